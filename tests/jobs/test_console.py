"""A quiet console: no TensorFlow or absl start-up lines, real warnings still shown, --verbose shows all."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jobs.console import is_noise
from tests.conftest import ROOT
from tests.jobs.test_fit_lines import run_job

NATIVE_LOG = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:|WARNING: All log messages before absl)", re.M)


@pytest.mark.parametrize(
    "line",
    [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796106016.184515    6597 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
        "GPU will not be used.",
        "E0000 00:00:1796106018.518900    6597 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
        "Failed call to cuInit: UNKNOWN ERROR (303)",
        "E0000 00:00:1731.1 123 cuda_dnn.cc:8310] Unable to register cuDNN factory: Attempting to register factory",
        "I0000 00:00:1731.1 123 cpu_feature_guard.cc:210] This TensorFlow binary is optimized to use available CPU",
    ],
)
def test_start_up_noise_is_recognised(line: str) -> None:
    assert is_noise(line)


@pytest.mark.parametrize(
    "line",
    [
        "tapefit: error: the job failed: boom",
        "W0000 00:00:1731.1 123 op_kernel.cc:1830] OP_REQUIRES failed at matmul_op.cc:57 : RESOURCE_EXHAUSTED",
        "E0000 00:00:1731.1 123 gpu_device.cc:2344] Cannot dlopen some GPU libraries.",
        "WARNING tensorflow: 5 out of the last 5 calls triggered tf.function retracing.",
        "Traceback (most recent call last):",
    ],
)
def test_real_warnings_and_errors_are_not_noise(line: str) -> None:
    assert not is_noise(line)


def test_the_filter_covers_native_writes_and_child_processes() -> None:
    """Native code writes to file descriptor 2 directly; children inherit it."""
    child = (
        "import os; os.write(2, b'I0000 00:00:1.5 7 cudart_stub.cc:31] Could not find cuda drivers\\n"
        "W0000 00:00:1.5 7 real.cc:9] a real warning from a child\\n')"
    )
    code = textwrap.dedent(
        f"""
        import os, subprocess, sys
        from jobs.console import quiet_stderr
        with quiet_stderr():
            os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
            os.write(2, b"E0000 00:00:1.5 7 cuda_platform.cc:52] failed call to cuInit: INTERNAL\\n")
            os.write(2, b"E0000 00:00:1.5 7 kernel.cc:1] a real native error\\n")
            print("tapefit: error: a line of our own", file=sys.stderr)
            subprocess.run([sys.executable, "-c", {child!r}], check=True)
        print("after: unfiltered again", file=sys.stderr)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stderr.splitlines() == [
        "E0000 00:00:1.5 7 kernel.cc:1] a real native error",
        "tapefit: error: a line of our own",
        "W0000 00:00:1.5 7 real.cc:9] a real warning from a child",
        "after: unfiltered again",
    ]


@pytest.fixture(scope="module")
def small_input() -> Path:
    return ROOT / "sample_data" / "files" / "sensors"


def test_a_normal_run_prints_no_native_log_line(small_input: Path, tmp_path: Path) -> None:
    done = run_job("--input", str(small_input), "--output", str(tmp_path / "t"), "--run_date", "2026-01-01")
    assert done.returncode == 0, done.stderr
    # progress lines are tapefit's own (a loaded machine may take past their first interval)
    assert [line for line in done.stderr.splitlines() if not line.startswith("tapefit: progress ")] == []
    assert done.stdout.startswith("tapefit: 19 datasets")


def test_a_multi_process_run_is_quiet_too(small_input: Path, tmp_path: Path) -> None:
    done = run_job(
        "--input", str(small_input), "--output", str(tmp_path / "t"), "--run_date", "2026-01-01",
        "--direct_running_mode", "multi_processing", "--direct_num_workers", "2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not NATIVE_LOG.search(done.stderr), done.stderr


def test_verbose_shows_the_logs(small_input: Path, tmp_path: Path) -> None:
    args = ("--input", str(small_input), "--output", str(tmp_path / "t"), "--run_date", "2026-01-01")
    done = run_job(*args, "--verbose")
    assert done.returncode == 0, done.stderr
    assert "INFO " in done.stderr
    assert "tapefit: 19 datasets" in done.stdout


def test_tracebacks_go_to_the_log_and_tapefits_own_lines_always_show() -> None:
    """A worker's traceback cut short must not swallow the launcher's last line."""
    from jobs.console import TracebackDiverter

    diverter = TracebackDiverter()
    lines = [
        "tapefit: progress 10/20 datasets (50%) after 10 s",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in f',
        "RuntimeError: boom",
        "",
        "During handling of the above exception, another exception occurred:",
        "Traceback (most recent call last):",
        '  File "y.py", line 2, in g',
        "tapefit: error: the job failed: boom (traceback in /tmp/tapefit-x.log)",
        "a real warning",
    ]
    shown = [line for line in lines if not diverter.divert(line)]
    assert shown == [lines[0], lines[8], "a real warning"]
