"""The output partition: mergeable summary, atomic swap, manifest, rerun safety."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from pipeline.config.settings import FitConfig, JobConfig
from pipeline.discover.layout import DatasetRef
from pipeline.discover.listing import Expected
from pipeline.fit import FitResult, Status
from pipeline.table.commit import commit_partition
from pipeline.table.leases import RunLease
from pipeline.table.paths import partition_dir, staging_dir
from pipeline.table.schema import SCHEMA, result_row
from pipeline.table.write import SummarizeRows, WriteTable
from tests.pipeline.test_commit import dead_run
from tests.pipeline.test_options import NOW


def _config(table: Path, run_id: str = "run-1") -> JobConfig:
    return JobConfig(
        input="in", output=str(table), run_date="2026-01-01", group_by="file", key_column=None,
        x_column="x", y_column="y", fit=FitConfig(), run_id=run_id, started_at=NOW,
    )  # fmt: skip


def _row(name: str, status: str, n_rows: int = 10, n_dropped: int = 1) -> dict:
    ok = status in (Status.OK, Status.NOT_CONVERGED)
    result = FitResult(status, w=1.0 if ok else None, b=0.0 if ok else None, n_rows=n_rows, n_dropped=n_dropped)
    return result_row(DatasetRef(name, f"in/{name}.parquet", (f"in/{name}.parquet",)), result, "run-1", NOW)


ROWS = [
    _row("a", "ok"),
    _row("b", "ok", 5, 0),
    _row("c", "failed", 7, 2),
    _row("d", "diverged"),
    _row("e", "not_converged"),
]
IDS = ("a", "b", "c", "d", "e")
EXPECTED = {
    "datasets": 5, "reused": 0, "rows_used": 35, "rows_dropped": 5, "ok": 2, "not_converged": 1, "diverged": 1,
    "failed": 1,
}  # fmt: skip


def test_summary_added_one_by_one() -> None:
    fn = SummarizeRows()
    tally = fn.create_accumulator()
    for row in ROWS:
        tally = fn.add_input(tally, row)
    assert fn.extract_output(tally) == EXPECTED


def _partial_tallies(fn: SummarizeRows) -> list[dict]:
    parts = []
    for chunk in (ROWS[:2], ROWS[2:3], [], ROWS[3:]):
        tally = fn.create_accumulator()
        for row in chunk:
            tally = fn.add_input(tally, row)
        parts.append(tally)
    return parts


def test_summary_merged_and_merged_then_compacted() -> None:
    fn = SummarizeRows()
    assert fn.extract_output(fn.merge_accumulators(_partial_tallies(fn))) == EXPECTED
    # Beam may mutate the first accumulator of a merge, so each case starts afresh.
    parts = _partial_tallies(fn)
    compacted = fn.compact(fn.merge_accumulators(parts[:2]))
    assert fn.extract_output(fn.merge_accumulators([compacted, *parts[2:]])) == EXPECTED


def _stage(config: JobConfig, name: str, rows: list[dict] | None = None) -> str:
    folder = Path(staging_dir(config))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA) if rows else SCHEMA.empty_table(), path)
    return str(path)


def test_commit_swaps_partition_and_removes_staging(tmp_path: Path) -> None:
    table = tmp_path / "table"
    first = _config(table, "run-1")
    staged = [_stage(first, "one.parquet")]
    manifest = commit_partition(first, staged, EXPECTED, 3, NOW)
    final = Path(partition_dir(first))
    assert commit_partition(first, staged, EXPECTED, 3, NOW) == manifest  # a retry is a no-op
    assert sorted(p.name for p in final.iterdir()) == ["_manifest.json", "one.parquet"]
    assert json.loads((final / "_manifest.json").read_text()) == manifest
    assert manifest["counts"] == {"datasets": 5, "ok": 2, "not_converged": 1, "diverged": 1, "failed": 1, "reused": 0}
    assert manifest["rows"] == {"used": 35, "dropped": 5, "null_key": 3}
    assert {"tapefit", "apache-beam", "tensorflow", "pyarrow"} <= set(manifest["versions"])
    # A crashed run of the same date left staging behind; the next commit clears it.
    crashed = _config(table, "run-crashed")
    dead_run(crashed)
    _stage(crashed, "half.parquet")
    second = _config(table, "run-2")
    commit_partition(second, [_stage(second, "two.parquet")], EXPECTED, 0, NOW)
    assert sorted(p.name for p in final.iterdir()) == ["_manifest.json", "two.parquet"]
    assert json.loads((final / "_manifest.json").read_text())["run_id"] == "run-2"
    assert sorted(p.name for p in table.iterdir()) == ["run_date=2026-01-01"]


def test_commit_refuses_an_empty_result_and_keeps_the_previous_partition(tmp_path: Path) -> None:
    table = tmp_path / "table"
    first = _config(table, "run-1")
    commit_partition(first, [_stage(first, "one.parquet")], EXPECTED, 0, NOW)
    empty = dataclasses.replace(first, run_id="run-2")
    with pytest.raises(RuntimeError, match="no datasets"):
        commit_partition(empty, [], {**EXPECTED, "datasets": 0}, 0, NOW)
    assert (Path(partition_dir(first)) / "one.parquet").exists()


def test_commit_refuses_rows_that_do_not_match_the_datasets_found(tmp_path: Path) -> None:
    table = tmp_path / "table"
    first = _config(table, "run-1")
    commit_partition(first, [_stage(first, "one.parquet", ROWS)], EXPECTED, 0, NOW, expected=Expected(IDS))
    second = _config(table, "run-2")
    with pytest.raises(RuntimeError, match="5 rows for the 6 datasets found, missing 'f': a row was lost"):
        commit_partition(second, [_stage(second, "two.parquet", ROWS)], EXPECTED, 0, NOW, Expected((*IDS, "f")))
    final = Path(partition_dir(first))
    assert sorted(p.name for p in final.iterdir()) == ["_manifest.json", "one.parquet"]  # untouched


def test_commit_compares_the_set_of_ids_not_their_count(tmp_path: Path) -> None:
    table = tmp_path / "table"
    first = _config(table, "run-1")
    commit_partition(first, [_stage(first, "one.parquet", ROWS)], EXPECTED, 0, NOW, expected=Expected(IDS))
    second = _config(table, "run-2")
    one_twice_one_lost = [ROWS[0], ROWS[0], *ROWS[2:]]  # 5 rows for 5 datasets, but "b" is lost
    staged = [_stage(second, "two.parquet", one_twice_one_lost[:3]), _stage(second, "three.parquet", ROWS[3:])]
    with pytest.raises(RuntimeError, match=r"5 rows for the 5 datasets found, duplicated 'a'; missing 'b': "):
        commit_partition(second, staged, EXPECTED, 0, NOW, expected=Expected(IDS))
    # column grouping: the ids are known only after reading, but each must be written once
    with pytest.raises(RuntimeError, match=r"^5 rows, duplicated 'a': a row was lost or duplicated"):
        commit_partition(second, staged, EXPECTED, 0, NOW, expected=Expected(None))
    stray = [*ROWS, _row("zz", "ok")]
    third = _config(table, "run-3")
    with pytest.raises(RuntimeError, match="6 rows for the 5 datasets found, not found by discovery 'zz'"):
        commit_partition(third, [_stage(third, "x.parquet", stray)], EXPECTED, 0, NOW, expected=Expected(IDS))
    final = Path(partition_dir(first))
    assert sorted(p.name for p in final.iterdir()) == ["_manifest.json", "one.parquet"]  # untouched


def test_output_check_fails_under_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):  # noqa: PT011 (NotADirectoryError)
        RunLease(_config(tmp_path / "file" / "table")).acquire()
    with RunLease(_config(tmp_path / "table")):
        assert (tmp_path / "table" / "_staging" / "run-1" / "_lease.json").is_file()
    assert not (tmp_path / "table" / "_staging").exists()


def test_write_table_pipeline_produces_partition_with_all_rows(tmp_path: Path) -> None:
    config = _config(tmp_path / "table")
    with TestPipeline() as p:
        results = {
            "tables": p
            | "Rows"
            >> beam.Create(
                [pa.Table.from_pylist(ROWS[:2], schema=SCHEMA), pa.Table.from_pylist(ROWS[2:], schema=SCHEMA)]
            ),
            "null_keys": p | "Nulls" >> beam.Create([2, 3]),
            "expected": p
            | "Expected" >> beam.Create([Expected(IDS, (("in/gone.parquet", "dangling symbolic link"),))]),
        }
        _ = results | WriteTable(config)
    final = Path(partition_dir(config))
    table = pq.read_table([str(path) for path in final.glob("*.parquet")], schema=SCHEMA)
    assert sorted(table.column("dataset").to_pylist()) == ["a", "b", "c", "d", "e"]
    manifest = json.loads((final / "_manifest.json").read_text())
    assert manifest["rows"]["null_key"] == 5 and manifest["counts"]["datasets"] == 5
    assert manifest["skipped"] == [{"path": "in/gone.parquet", "reason": "dangling symbolic link"}]
    assert not list(tmp_path.glob("table/_staging")) and not list(final.glob("beam-temp*"))
