"""The reporting tools' partition reader follows the manifest's file list."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.discover.layout import DatasetRef
from pipeline.fit import FitResult, Status
from pipeline.table.partitions import MissingError, find_partition, load_partition, run_dates
from pipeline.table.schema import SCHEMA, result_row
from tests.pipeline.test_options import NOW


def _file(path: Path, ws: dict[str, float]) -> None:
    rows = [
        result_row(DatasetRef(name, f"in/{name}", ()), FitResult(Status.OK, w=w, b=0.0), path.stem, NOW)
        for name, w in ws.items()
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path)


def _ws(rows: list[dict]) -> list[tuple[str, float]]:
    return [(row["dataset"], row["w"]) for row in rows]


def test_stray_files_beside_the_listed_ones_are_ignored(tmp_path: Path) -> None:
    folder = tmp_path / "run_date=2026-01-01"
    _file(folder / "part-new-0.parquet", {"b": 2.0, "a": 1.0})
    _file(folder / "part-new-1.parquet", {"c": 3.0})
    _file(folder / "part-old-0.parquet", {"a": -1.0, "b": -2.0, "c": -3.0})  # the replaced run's, not yet deleted
    manifest = {"run_id": "new", "files": ["part-new-0.parquet", "part-new-1.parquet"]}
    (folder / "_manifest.json").write_text(json.dumps(manifest))

    rows, found = load_partition(find_partition(tmp_path, None))

    assert _ws(rows) == [("a", 1.0), ("b", 2.0), ("c", 3.0)] and found == manifest


def test_without_a_manifest_every_parquet_file_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "run_date=2026-01-01"
    _file(folder / "part-0.parquet", {"a": 1.0})
    _file(folder / "part-1.parquet", {"b": 2.0})
    (tmp_path / "run_date=2026-01-02").mkdir()  # empty: no partition
    assert run_dates(tmp_path) == ["2026-01-01"]
    assert load_partition(find_partition(tmp_path, None)) == (load_partition(folder)[0], None)
    assert _ws(load_partition(folder)[0]) == [("a", 1.0), ("b", 2.0)]


def test_a_listed_file_that_is_missing_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "run_date=2026-01-01"
    _file(folder / "part-0.parquet", {"a": 1.0})
    (folder / "_manifest.json").write_text(json.dumps({"files": ["part-0.parquet", "part-1.parquet"]}))
    with pytest.raises(MissingError) as raised:
        load_partition(folder)
    assert str(raised.value) == f"{folder}/part-1.parquet is missing, though {folder}/_manifest.json lists it"
    (folder / "_manifest.json").write_text("{not json")
    with pytest.raises(MissingError, match=r"_manifest.json is not a tapefit manifest: Expecting property name"):
        load_partition(folder)
