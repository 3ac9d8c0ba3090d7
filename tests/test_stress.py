"""The stress harness (``make stress``) catches what it hunts: lost, duplicated and unlisted rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq

from tests import stress


def test_stress_accounting_on_a_real_run(tmp_path: Path) -> None:
    ids = stress.make_input(tmp_path / "input", 12, 30)
    code, last, _ = stress._run(tmp_path / "input", tmp_path / "table", "gram", (), 5)
    assert code == 0, last
    rows, problems = stress.check_run(tmp_path / "table", ids)
    assert problems == [] and rows.num_rows == 12
    partition = next((tmp_path / "table").glob("run_date=*"))
    files = sorted(partition.glob("*.parquet"))
    first = pq.read_table(files[0])
    pq.write_table(first.slice(1), files[0])  # one row lost
    _, problems = stress.check_run(tmp_path / "table", ids)
    assert any(p.startswith("lost 1 ") for p in problems)
    pq.write_table(first, files[0])
    shutil.copy(files[0], partition / "stray.parquet")  # a file the manifest does not list
    _, problems = stress.check_run(tmp_path / "table", ids)
    assert any("but the manifest lists" in p for p in problems)
