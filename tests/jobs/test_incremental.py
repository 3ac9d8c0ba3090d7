"""--incremental and --warm_start across runs of the real job (in-process DirectRunner)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from jobs.fit_lines import main
from tests.conftest import lstsq, write_parquet
from tests.jobs.test_fit_lines import read_rows


def _run(source: Path, table: Path, date: str, *extra: str) -> dict[str, dict]:
    assert main(["--input", str(source), "--output", str(table), "--run_date", date, *extra]) == 0
    return {row["dataset"]: row for row in read_rows(table, date)}


def _write(path: Path, rng: np.random.Generator, w: float, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(-3, 3, n)
    y = w * x + 1 + rng.normal(0, 0.1, n)
    write_parquet(path, x=x, y=y)
    return x, y


def _bump_mtime(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))


def test_only_changed_new_and_failed_datasets_are_refit(tmp_path: Path) -> None:
    source, table = tmp_path / "in", tmp_path / "table"
    rng = np.random.default_rng(1)
    for i in range(8):
        _write(source / f"d{i}.parquet", rng, w=i)
    write_parquet(source / "broken.parquet", x=[1.0, 2.0])  # no y: failed every time
    first = _run(source, table, "2026-01-01", "--incremental")
    assert all(row["reused_from"] is None for row in first.values())

    x, y = _write(source / "d3.parquet", rng, w=-7.0)  # changed content
    _write(source / "new.parquet", rng, w=2.5)
    (source / "d7.parquet").unlink()
    second = _run(source, table, "2026-01-02", "--incremental")

    refit = sorted(name for name, row in second.items() if row["reused_from"] is None)
    assert refit == ["broken", "d3", "new"]
    assert "d7" not in second and len(second) == 9
    assert second["d3"]["w"] == pytest.approx(lstsq(x, y)[0], rel=1e-9)
    for name in ("d0", "d1", "d2", "d4", "d5", "d6"):
        reused, before = second[name], first[name]
        assert reused["reused_from"] == "2026-01-01"
        assert (reused["w"], reused["b"], reused["steps"], reused["fitted_at"]) == (
            before["w"], before["b"], before["steps"], before["fitted_at"],
        )  # fmt: skip
        assert reused["run_id"] == second["d3"]["run_id"] != before["run_id"]

    _bump_mtime(source / "d0.parquet")  # a touched file counts as changed
    third = _run(source, table, "2026-01-03", "--incremental")
    assert sorted(n for n, r in third.items() if r["reused_from"] is None) == ["broken", "d0"]
    assert third["d1"]["reused_from"] == "2026-01-01"  # names the run that fitted it

    changed_settings = _run(source, table, "2026-01-04", "--incremental", "--max_steps", "500")
    assert all(row["reused_from"] is None for row in changed_settings.values())


def test_column_grouping_reuses_all_or_nothing(tmp_path: Path) -> None:
    source, table = tmp_path / "in", tmp_path / "table"
    rng = np.random.default_rng(2)
    for part in range(2):
        keys = pa.array(["a", "b", "c"] * 20)
        write_parquet(source / f"part-{part}.parquet", key=keys, x=rng.normal(size=60), y=rng.normal(size=60))
    args = ("--group_by", "column:key", "--incremental")
    _run(source, table, "2026-01-01", *args)
    unchanged = _run(source, table, "2026-01-02", *args)
    assert {r["reused_from"] for r in unchanged.values()} == {"2026-01-01"} and len(unchanged) == 3
    _bump_mtime(source / "part-1.parquet")
    changed = _run(source, table, "2026-01-03", *args)
    assert {r["reused_from"] for r in changed.values()} == {None}


def test_warm_start_saves_steps_and_lands_on_the_same_fit(tmp_path: Path) -> None:
    source, table = tmp_path / "in", tmp_path / "table"
    rng = np.random.default_rng(3)
    originals = {}
    for i in range(5):
        originals[i] = _write(source / f"d{i}.parquet", rng, w=1.5 + i)
    _run(source, table, "2026-01-01")
    for i, (x, y) in originals.items():  # the next day's data: a little more of the same
        extra = rng.uniform(-3, 3, 20)
        write_parquet(
            source / f"d{i}.parquet",
            x=np.append(x, extra),
            y=np.append(y, (1.5 + i) * extra + 1 + rng.normal(0, 0.1, 20)),
        )
    cold = _run(source, table, "2026-01-02")
    warm = _run(source, table, "2026-01-03", "--warm_start")
    for name, row in warm.items():
        assert row["status"] == "ok" and row["reused_from"] is None
        assert row["steps"] < cold[name]["steps"] / 2, (row["steps"], cold[name]["steps"])
        assert row["w"] == pytest.approx(cold[name]["w"], rel=1e-10)
        assert row["b"] == pytest.approx(cold[name]["b"], rel=1e-9, abs=1e-12)
