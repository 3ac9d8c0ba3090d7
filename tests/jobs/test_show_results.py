"""``show_results`` on a real partition: one line per dataset, whatever its id holds."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.show_results import main
from pipeline.discover.layout import DatasetRef
from pipeline.fit import FitResult, Status
from pipeline.table.schema import SCHEMA, result_row
from tests.pipeline.test_options import NOW

ID_WIDTH = 60  # the most columns an id takes on screen
ODD = ["line one\nline two", "x" * 3000, "tab\there", "plain", "漢字" * 40]


def _partition(table: Path) -> Path:
    folder = table / "run_date=2026-01-01"
    folder.mkdir(parents=True)
    rows = [
        result_row(DatasetRef(name, f"in/{name}", (f"in/{name}",)), FitResult(Status.OK, w=1.0, b=2.0), "r", NOW)
        for name in ODD
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), folder / "part-0.parquet")
    return folder


def test_odd_ids_are_escaped_and_shortened_for_display_only(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = _partition(tmp_path / "table")
    assert main(["--table", str(tmp_path / "table"), "--layout", "files"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 2 + len(ODD)  # the counts line, header and rule, one line per dataset
    shown = [line.split("  ")[0] for line in lines[3:]]
    assert "line one\\nline two" in shown and "tab\\there" in shown and "plain" in shown
    assert "x" * (ID_WIDTH - 1) + "…" in shown
    assert all(len(line) < 250 for line in lines)
    # the table itself keeps every id exactly
    kept = pq.read_table(folder / "part-0.parquet").column("dataset").to_pylist()
    assert sorted(kept) == sorted(ODD)
    assert json.dumps(kept)  # (they are plain strings)
