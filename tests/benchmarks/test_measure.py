"""The measuring wrapper: orphaned grandchildren counted, timeouts enforced."""

from __future__ import annotations

import sys

from benchmarks import measure


def test_measure_counts_an_orphaned_grandchild():
    child = "a = bytearray(200 << 20); import time; time.sleep(0.5)"
    script = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {child!r}])"  # exits without waiting
    result = measure.measure([sys.executable, "-c", script])
    assert result["returncode"] == 0 and result["subreaper"]
    assert result["max_rss_mb"] >= 200 and result["max_rss_mb"] >= result["sampled_max_rss_mb"] - 1


def test_measure_timeout():
    result = measure.measure([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
    assert result["returncode"] is None and result["wall_s"] < 10
