"""--incremental sees a file replaced by different data of the same size with its mtime kept."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import lstsq
from tests.jobs.test_incremental import _run


def _write(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """Plain, uncompressed doubles: the file's size depends only on the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"x": x, "y": y}), path, compression="none", use_dictionary=False)


def _replace_keeping_mtime(path: Path, replacement: Path) -> None:
    """``cp -p`` over the file: new content, same size, the old atime and mtime put back."""
    before = path.stat()
    assert replacement.stat().st_size == before.st_size
    temporary = path.with_name(".incoming")
    shutil.copy2(replacement, temporary)
    os.replace(temporary, path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_a_same_size_copy_that_keeps_mtime_is_refit(tmp_path: Path) -> None:
    source, table, spare = tmp_path / "in", tmp_path / "table", tmp_path / "spare"
    x = np.linspace(-3.0, 3.0, 64)
    _write(source / "a.parquet", x, 2.0 * x + 1.0)
    _write(source / "b.parquet", x, -1.0 * x)
    _write(spare / "a.parquet", x, -5.0 * x + 1.0)  # same shape and types: same size
    first = _run(source, table, "2026-01-01", "--incremental")
    assert first["a"]["w"] == pytest.approx(2.0, rel=1e-6)

    _replace_keeping_mtime(source / "a.parquet", spare / "a.parquet")
    second = _run(source, table, "2026-01-02", "--incremental")

    assert second["a"]["reused_from"] is None
    assert second["a"]["w"] == pytest.approx(lstsq(x, -5.0 * x + 1.0)[0], rel=1e-6)
    assert second["b"]["reused_from"] == "2026-01-01"  # untouched: still reused
