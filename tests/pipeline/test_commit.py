"""The commit under concurrency and crashes: leases, the commit lock, healing, object stores.

Other runs are real processes: a live one holds its lease's flock, a dead one has exited.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.io.filesystems import FileSystems

from pipeline.config.settings import FitConfig, JobConfig
from pipeline.discover.layout import DatasetRef
from pipeline.discover.listing import Expected
from pipeline.fit import FitResult
from pipeline.table.cleanup import remove_dead_runs
from pipeline.table.commit import commit_partition
from pipeline.table.leases import LEASE_TIMEOUT_S, is_run_dead
from pipeline.table.locks import PartitionBusyError
from pipeline.table.paths import partition_dir, staging_dir
from pipeline.table.schema import SCHEMA, result_row
from tests import fakeos
from tests.conftest import ROOT
from tests.pipeline.test_options import NOW

SUMMARY = {"datasets": 1, "reused": 0, "rows_used": 10, "rows_dropped": 0, "ok": 1}


def _config(table: str, run_id: str, run_date: str = "2026-01-01", **extra: object) -> JobConfig:
    return JobConfig(
        input="in", output=table, run_date=run_date, group_by="file", key_column=None,
        x_column="x", y_column="y", fit=FitConfig(), run_id=run_id, started_at=NOW, **extra,
    )  # fmt: skip


def _rows(run_id: str) -> pa.Table:
    result = FitResult("ok", w=1.0, b=0.0, n_rows=10, n_dropped=0)
    return pa.Table.from_pylist(
        [result_row(DatasetRef("a", "in/a.parquet", ("in/a.parquet",)), result, run_id, NOW)], schema=SCHEMA
    )


def _stage(config: JobConfig) -> str:
    """Write one data file into the run's staging folder, on any filesystem."""
    path = FileSystems.join(staging_dir(config), f"part-{config.run_id}-00000-of-00001.parquet")
    if "://" not in path:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    sink = pa.BufferOutputStream()
    pq.write_table(_rows(config.run_id), sink)
    handle = FileSystems.create(path)
    handle.write(sink.getvalue().to_pybytes())
    handle.close()
    return path


def _commit(config: JobConfig) -> dict:
    return commit_partition(config, [_stage(config)], SUMMARY, 0, NOW, Expected(("a",)))


_HOLD = """
import sys, time
from pipeline.table.leases import open_exclusive
fd = open_exclusive(sys.argv[1], {"run_id": sys.argv[2], "host": "test", "pid": 0, "since": "now"}, wait=False)
print("held", flush=True)
time.sleep(float(sys.argv[3]))
"""


def _lease_path(config: JobConfig) -> str:
    return os.path.join(config.output, "_staging", config.run_id, "_lease.json")


def dead_run(config: JobConfig) -> None:
    """Leave ``config``'s run as a crashed run does: a lease whose process has exited."""
    subprocess.run([sys.executable, "-c", _HOLD, _lease_path(config), config.run_id, "0"], cwd=ROOT, check=True)


@contextlib.contextmanager
def live_run(config: JobConfig, path: str | None = None) -> Iterator[subprocess.Popen]:
    """A process holding ``config``'s lease (or the lock file ``path``) while the body runs."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, path or _lease_path(config), config.run_id, "120"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_live_runs_files_survive_every_commit_and_a_dead_runs_go(tmp_path: Path) -> None:
    table = str(tmp_path / "table")
    live, other_date, dead = _config(table, "run-live"), _config(table, "run-d2", "2026-01-02"), _config(table, "run-x")
    with live_run(live), live_run(other_date):
        _stage(live)
        _stage(other_date)
        dead_run(dead)
        _stage(dead)
        before = _snapshot(tmp_path / "table" / "_staging")
        assert not is_run_dead(_config(table, "me"), "run-live") and is_run_dead(_config(table, "me"), "run-x")
        _commit(_config(table, "run-1"))
        after = _snapshot(tmp_path / "table" / "_staging")
    assert {k: v for k, v in before.items() if not k.startswith("run-x/")} == after  # live runs untouched
    assert not (tmp_path / "table" / "_staging" / "run-x").exists()


def test_a_folder_without_a_lease_counts_as_dead_only_once_it_is_old(tmp_path: Path) -> None:
    table = str(tmp_path / "table")
    legacy = _config(table, "run-old")
    _stage(legacy)
    me = _config(table, "me")
    assert not is_run_dead(me, "run-old")
    assert is_run_dead(me, "run-old", now=time.time() + LEASE_TIMEOUT_S + 1)


def test_a_run_killed_between_the_two_renames_is_undone_byte_for_byte(tmp_path: Path) -> None:
    table = tmp_path / "table"
    _commit(_config(str(table), "20260101T000000Z-00000001"))
    final = table / "run_date=2026-01-01"
    before = _snapshot(final)
    script = (
        "import sys; from tests.pipeline.test_commit import _commit, _config; "
        "from pipeline.table.leases import RunLease; "
        "config = _config(sys.argv[1], '20260101T000000Z-00000002'); RunLease(config).acquire(); _commit(config)"
    )
    marker = tmp_path / "paused"
    env = {**os.environ, "TAPEFIT_PAUSE_AT": "between_renames", "TAPEFIT_PAUSE_MARKER": str(marker)}
    crashing = subprocess.Popen([sys.executable, "-c", script, str(table)], cwd=ROOT, env=env)
    _wait_for(marker.with_name("paused.between_renames"), crashing)
    os.kill(crashing.pid, signal.SIGKILL)
    crashing.wait()
    assert not final.exists()  # the crash point: the old partition is parked, the new one not in place
    parked = table / "_staging" / "20260101T000000Z-00000002" / "previous" / "run_date=2026-01-01"
    assert _snapshot(parked) == before
    assert remove_dead_runs(_config(str(table), "any")) == ["20260101T000000Z-00000002"]
    assert _snapshot(final) == before


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the process ended (exit {process.returncode}) before reaching {path.name}"
        assert time.monotonic() < deadline, f"never reached {path.name}"
        time.sleep(0.05)


def test_the_commit_lock_waits_then_refuses_naming_its_holder(tmp_path: Path) -> None:
    table = str(tmp_path / "table")
    _commit(_config(table, "run-1"))
    before = _snapshot(Path(table) / "run_date=2026-01-01")
    lock = os.path.join(table, "_staging", "_locks", "run_date=2026-01-01.lock")
    second = _config(table, "run-2", lock_timeout=0.5)
    with live_run(_config(table, "run-holder"), lock), pytest.raises(PartitionBusyError) as refused:
        _commit(second)
    assert str(refused.value).startswith("partition busy: run_date=2026-01-01 of ")
    assert "is being committed by run run-holder (host test" in str(refused.value)
    assert _snapshot(Path(table) / "run_date=2026-01-01") == before
    _commit(second)  # the holder is gone: the lock is free again
    assert json.loads((Path(table) / "run_date=2026-01-01" / "_manifest.json").read_text())["run_id"] == "run-2"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(fakeos.ROOT_ENV, str(tmp_path / "store"))
    monkeypatch.setattr(fakeos, "_calls", fakeos.Counter())
    return "fakeos://bucket/table"


def _listed(config: JobConfig) -> tuple[str, dict[str, bytes]]:
    """What a reader that follows the manifest sees: its run id and the listed files' bytes."""
    final = partition_dir(config)
    with FileSystems.open(FileSystems.join(final, "_manifest.json")) as handle:
        manifest = json.loads(handle.read())
    files = {}
    for name in manifest["files"]:
        with FileSystems.open(FileSystems.join(final, name)) as handle:
            files[name] = handle.read()
    return manifest["run_id"], files


def _objects(config: JobConfig) -> list[str]:
    final = partition_dir(config)
    return sorted(m.path[len(final) + 1 :] for m in FileSystems.match([final + "/*"])[0].metadata_list)


@pytest.mark.parametrize("fault", ["rename@run_date=:1", "create@_manifest.json:1"])
def test_object_store_commit_that_fails_keeps_the_previous_partition(
    store: str, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    first = _config(store, "20260101T000000Z-00000001")
    _commit(first)
    before = _listed(first)
    monkeypatch.setenv(fakeos.FAIL_ENV, fault)
    second = dataclasses.replace(first, run_id="20260101T000000Z-00000002")
    with pytest.raises(Exception, match="injected"):
        _commit(second)
    assert _listed(first) == before  # what readers see has not changed
    monkeypatch.delenv(fakeos.FAIL_ENV)
    third = dataclasses.replace(first, run_id="20260101T000000Z-00000003")
    _commit(third)  # the next commit heals: only its own files are left
    assert _listed(third)[0] == third.run_id
    assert _objects(third) == ["_manifest.json", "part-20260101T000000Z-00000003-00000-of-00001.parquet"]


def test_object_store_commit_that_fails_to_delete_is_committed_and_healed_next_time(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _config(store, "20260101T000000Z-00000001")
    _commit(first)
    monkeypatch.setenv(fakeos.FAIL_ENV, "delete@run_date=:1")
    second = dataclasses.replace(first, run_id="20260101T000000Z-00000002")
    with pytest.raises(Exception, match="injected delete"):
        _commit(second)
    assert _listed(second)[0] == second.run_id  # the manifest, the commit point, was written
    assert len(_objects(second)) == 3  # the old file is still there, unlisted
    monkeypatch.delenv(fakeos.FAIL_ENV)
    third = dataclasses.replace(first, run_id="20260101T000000Z-00000003")
    _commit(third)
    assert _objects(third) == ["_manifest.json", "part-20260101T000000Z-00000003-00000-of-00001.parquet"]


def test_object_store_commit_keeps_a_live_runs_files_it_does_not_list(store: str, tmp_path: Path) -> None:
    """A concurrent run may have moved its files in and not yet written its manifest."""
    first = _config(store, "20260101T000000Z-00000001")
    _commit(first)
    other = dataclasses.replace(first, run_id="20260101T000000Z-0000000a")
    lease = FileSystems.create(FileSystems.join(store, "_staging", other.run_id, "_lease.json"))
    lease.write(b"{}")  # a fresh heartbeat
    lease.close()
    moved_in = FileSystems.join(partition_dir(first), f"part-{other.run_id}-00000-of-00001.parquet")
    FileSystems.create(moved_in).close()
    _commit(dataclasses.replace(first, run_id="20260101T000000Z-00000002"))
    assert FileSystems.exists(moved_in)
