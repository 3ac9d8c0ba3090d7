"""Runs that meet each other, signals, dead workers and I/O errors: real processes, real signals.

Every case checks what a user relies on: each run ends in one line and a documented exit
code with no traceback, and the previous partition survives byte for byte unless a run
committed a complete new one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests import fakeos
from tests.conftest import ROOT, write_parquet
from tests.jobs.test_fit_lines import run_job
from tests.pipeline.test_commit import _wait_for, live_run

DATE = "2026-03-01"


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 small datasets, enough for a run to take a few seconds."""
    root = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(11)
    for i in range(120):
        x = rng.uniform(-3, 3, 50)
        write_parquet(root / f"d{i:03d}.parquet", x=x, y=1.5 * x - 2 + rng.normal(0, 0.1, 50))
    return root


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _complete_output_of_one_run(partition: Path, datasets: int) -> str:
    """Assert the partition is one run's whole output; return that run's id."""
    manifest = json.loads((partition / "_manifest.json").read_text())
    assert sorted(p.name for p in partition.glob("*.parquet")) == sorted(manifest["files"])
    table = pq.read_table([str(partition / name) for name in manifest["files"]])
    assert set(table.column("run_id").to_pylist()) == {manifest["run_id"]}
    assert sorted(table.column("dataset").to_pylist()) == [f"d{i:03d}" for i in range(datasets)]
    return manifest["run_id"]


def _assert_one_line(stderr: str, starts: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("tapefit: progress")]
    assert len(lines) == 1 and lines[0].startswith(starts), stderr
    assert "Traceback" not in stderr


def _start(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.fit_lines", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _paused_run(many: Path, table: Path, point: str, *extra: str) -> tuple[dict[str, bytes], subprocess.Popen, int]:
    """Commit a first run, then start a second that pauses at ``point``.

    Returns:
        The first partition's bytes, the paused run, and the pid that reached the point.
    """
    assert run_job("--input", str(many), "--output", str(table), "--run_date", DATE).returncode == 0
    before = _snapshot(table / f"run_date={DATE}")
    marker = table.parent / "paused"
    env = {"TAPEFIT_PAUSE_AT": point, "TAPEFIT_PAUSE_MARKER": str(marker)}
    run = _start("--input", str(many), "--output", str(table), "--run_date", DATE, *extra, env=env)
    _wait_for(marker.with_name(f"paused.{point}"), run, timeout=300)
    return before, run, int(marker.with_name(f"paused.{point}").read_text())


def test_concurrent_runs_of_different_dates_and_of_one_date_all_succeed(many: Path, tmp_path: Path) -> None:
    table = tmp_path / "table"
    dates = ["2026-03-01", "2026-03-02", "2026-03-03", DATE, DATE]  # a backfill, and one date three times
    runs = [_start("--input", str(many), "--output", str(table), "--run_date", d) for d in dates]
    outcomes = [run.communicate(timeout=600) + (run.returncode,) for run in runs]
    for _, err, code in outcomes:
        assert code == 0, err
        assert "Traceback" not in err
    for date in sorted(set(dates)):
        _complete_output_of_one_run(table / f"run_date={date}", 120)
    assert sorted(p.name for p in table.iterdir()) == [f"run_date={d}" for d in sorted(set(dates))]  # no staging


def test_a_run_that_cannot_take_the_commit_lock_exits_4_naming_the_holder(many: Path, tmp_path: Path) -> None:
    table = tmp_path / "table"
    assert run_job("--input", str(many), "--output", str(table), "--run_date", DATE).returncode == 0
    before = _snapshot(table / f"run_date={DATE}")
    lock = str(table / "_staging" / "_locks" / f"run_date={DATE}.lock")
    from tests.pipeline.test_commit import _config

    with live_run(_config(str(table), "run-holder"), lock):
        busy = run_job("--input", str(many), "--output", str(table), "--run_date", DATE, "--lock_timeout", "1")
    assert busy.returncode == 4, busy.stderr
    _assert_one_line(busy.stderr, f"tapefit: error: partition busy: run_date={DATE} of ")
    assert "run run-holder (host test" in busy.stderr
    assert _snapshot(table / f"run_date={DATE}") == before
    assert sorted(str(p.relative_to(table)) for p in table.rglob("*") if p.is_file()) == [
        f"_staging/_locks/run_date={DATE}.lock",  # the holder's own file: the refused run left nothing
        *(f"run_date={DATE}/{name}" for name in sorted(before)),
    ]


@pytest.mark.parametrize(
    ("point", "signum"),
    [
        ("discovery", signal.SIGTERM),
        ("fitting", signal.SIGTERM),
        ("commit", signal.SIGTERM),
        ("fitting", signal.SIGINT),
    ],
)
def test_a_stopped_launcher_cleans_up_and_keeps_the_previous_partition(
    many: Path, tmp_path: Path, point: str, signum: int
) -> None:
    table = tmp_path / "table"
    before, run, _ = _paused_run(many, table, point)
    run.send_signal(signum)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 128 + signum, err
    name = signal.Signals(signum).name
    _assert_one_line(
        err, f"tapefit: stopped by {name}: nothing was committed; the previous run_date={DATE} is unchanged"
    )
    assert _snapshot(table / f"run_date={DATE}") == before
    assert sorted(p.name for p in table.iterdir()) == [f"run_date={DATE}"]  # its staging, beam-temp included, is gone


def test_a_dead_worker_ends_the_run_with_exit_1_and_one_line(many: Path, tmp_path: Path) -> None:
    table = tmp_path / "table"
    multi = ("--direct_running_mode", "multi_processing", "--direct_num_workers", "2")
    before, run, worker = _paused_run(many, table, "fitting", *multi)
    assert worker != run.pid  # the fit runs in a worker process
    os.kill(worker, signal.SIGKILL)
    _, err = run.communicate(timeout=300)
    assert run.returncode == 1, err
    _assert_one_line(err, "tapefit: error: the job failed: a worker process died (killed by SIGKILL")
    log = err.rsplit("(traceback in ", 1)[1].split(")")[0]
    assert "Worker subprocess exited with return code" in Path(log).read_text()
    assert _snapshot(table / f"run_date={DATE}") == before
    assert sorted(p.name for p in table.iterdir()) == [f"run_date={DATE}"]


def test_a_crash_between_the_two_renames_is_undone_by_the_next_run(many: Path, tmp_path: Path) -> None:
    table = tmp_path / "table"
    before, run, paused = _paused_run(many, table, "between_renames")
    os.kill(paused, signal.SIGKILL)
    run.communicate(timeout=120)
    assert not (table / f"run_date={DATE}").exists()  # the crash point
    other = run_job("--input", str(many), "--output", str(table), "--run_date", "2026-03-05")
    assert other.returncode == 0, other.stderr
    assert _snapshot(table / f"run_date={DATE}") == before
    assert sorted(p.name for p in table.iterdir()) == [f"run_date={DATE}", "run_date=2026-03-05"]


def _store_job(store: Path, many: Path, fault: str | None) -> subprocess.CompletedProcess:
    """The real command with fakeos:// registered, writing to the fake object store."""
    code = "import sys, tests.fakeos; from jobs.fit_lines import console_main; console_main()"
    env = {**os.environ, fakeos.ROOT_ENV: str(store)}
    env.pop(fakeos.FAIL_ENV, None)
    if fault:
        env[fakeos.FAIL_ENV] = fault
    args = ["--input", str(many), "--output", "fakeos://bucket/table", "--run_date", DATE]
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize(
    "fault",
    [
        "create@beam-temp:1",  # writing a data file
        "rename@_staging/:1",  # Beam finalizing its files in the staging folder
        "rename@table/run_date=:1",  # the commit, moving the files in
        "create@table/run_date=2026-03-01/_manifest.json:1",  # the commit point itself
    ],
)
def test_an_io_error_in_the_write_or_the_commit_keeps_the_previous_partition(
    many: Path, tmp_path: Path, fault: str
) -> None:
    store = tmp_path / "store"
    assert _store_job(store, many, None).returncode == 0
    partition = store / "bucket" / "table" / f"run_date={DATE}"
    before = _snapshot(partition)
    failed = _store_job(store, many, fault)
    assert failed.returncode == 1, failed.stderr
    _assert_one_line(failed.stderr, "tapefit: error: the job failed: ")
    assert "injected" in failed.stderr
    manifest = json.loads((partition / "_manifest.json").read_text())
    assert {name: before[name] for name in ["_manifest.json", *manifest["files"]]} == {
        name: (partition / name).read_bytes() for name in ["_manifest.json", *manifest["files"]]
    }  # readers follow the manifest: what they read is byte for byte the previous partition
    assert _store_job(store, many, None).returncode == 0  # and the next run heals the rest
    manifest = json.loads((partition / "_manifest.json").read_text())
    assert sorted(p.name for p in partition.iterdir()) == sorted(
        ["_manifest.json", manifest["fingerprints"], *manifest["files"]]
    )
    assert not [p for p in (store / "bucket" / "table").rglob("_staging/**/*") if p.is_file()]  # no objects left


def test_stop_during_the_first_run_leaves_no_table_behind(many: Path, tmp_path: Path) -> None:
    table = tmp_path / "table"
    marker = tmp_path / "paused"
    run = _start(
        "--input", str(many), "--output", str(table), "--run_date", DATE,
        env={"TAPEFIT_PAUSE_AT": "fitting", "TAPEFIT_PAUSE_MARKER": str(marker)},
    )  # fmt: skip
    _wait_for(marker.with_name("paused.fitting"), run)
    time.sleep(0.2)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 143, err
    assert not table.exists() or not any(table.iterdir())


def test_a_workers_traceback_becomes_its_exception_line() -> None:
    """A multi-process runner hands back the worker's whole traceback as the error's text."""
    from jobs.fit_lines import _failure

    remote = (
        'Traceback (most recent call last):\n  File "apache_beam/runners/common.py", line 1512, in process\n'
        "    raise RuntimeError(\nRuntimeError: 957 rows for the 1000 datasets found, missing 'g08/d00858': "
        "a row was lost or duplicated [while running 'WriteTable/Commit']\n"
    )
    code, line = _failure(RuntimeError(remote), verbose=False)
    assert code == 1
    assert line.startswith("tapefit: error: the job failed: 957 rows for the 1000 datasets found, missing 'g08/d00858'")
    assert "Traceback" not in line and "(traceback in " in line
