"""The report's numbers (pipeline.report.data) and the partition helpers it reads with."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest

from pipeline.report.data import compare, error_reasons, pick_panels, problems, status_counts, wall_time
from pipeline.table.partitions import MissingError, find_partition, previous_partition, run_dates


def row(dataset: str, status: str = "ok", r2: float | None = 0.99, w: float | None = 1.0, b: float | None = 0.0,
        error: str | None = None) -> dict:  # fmt: skip
    return {"dataset": dataset, "status": status, "r2": r2, "w": w, "b": b, "error": error, "steps": 9, "run_id": "r1"}


def test_counts_problems_and_reasons() -> None:
    rows = [
        row("a"),
        row("z", "failed", None, None, None, "not a readable Parquet file: magic bytes"),
        row("y", "failed", None, None, None, "not a readable Parquet file: size is 0 bytes"),
        row("x", "failed", None, None, None, "needs at least 2 rows with finite x and y, found 1 (0 dropped)"),
        row("d", "diverged", None, None, None, "loss became inf at step 3"),
        row("n", "not_converged", 0.5),
    ]
    assert status_counts(rows) == {"ok": 1, "not_converged": 1, "diverged": 1, "failed": 3}
    assert [r["dataset"] for r in problems(rows)] == ["x", "y", "z", "d", "n"]
    assert error_reasons(rows) == [
        ("failed", "not a readable Parquet file", 2),
        ("diverged", "loss became inf at step N", 1),
        ("failed", "needs at least N rows with finite x and y, found N", 1),
        ("not_converged", "reached max_steps", 1),
    ]


def test_wall_time_from_manifest_or_rows() -> None:
    manifest = {"started_at": "2026-01-01T02:15:00+00:00", "finished_at": "2026-01-01T02:16:30.5+00:00"}
    assert wall_time(manifest, []) == (90.5, "launch to commit, from _manifest.json")
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    stamped = [{"fitted_at": start}, {"fitted_at": start + dt.timedelta(seconds=4)}]
    seconds, how = wall_time(None, stamped)
    assert seconds == 4.0 and how.startswith("at least")
    assert wall_time({}, stamped[:1]) == (None, "not recorded")


def test_panels_are_the_worst_by_r2_and_a_reproducible_random_ok_sample() -> None:
    rows = [row(f"d{i:02}", r2=1 - i / 100) for i in range(30)] + [row("nc", "not_converged", -3.0)]
    rows.append(row("f", "failed", None))
    worst, chosen = pick_panels(rows, 4, seed=7)
    assert [r["dataset"] for r in worst] == ["nc", "d29", "d28", "d27"]
    assert len(chosen) == 4 and not {r["dataset"] for r in chosen} & {"nc", "d29", "d28", "d27", "f"}
    assert pick_panels(rows, 4, seed=7) == (worst, chosen)
    assert pick_panels(rows[:2], 4) == (sorted(rows[:2], key=lambda r: r["r2"]), [])


def test_compare_finds_moved_status_changes_new_and_gone() -> None:
    before = [row("same"), row("w_up", w=2.0), row("b_tiny", b=100.0), row("from0", b=0.0), row("broke"), row("old")]
    now = [row("same"), row("w_up", w=3.0), row("b_tiny", b=100.5), row("from0", b=1e-9)]
    now += [row("broke", "failed", None, None, None, "no rows"), row("fresh")]
    result = compare(now, before, "2025-12-31", "r0", threshold=0.01)
    assert [(c.dataset, c.rel_w, c.rel_b) for c in result.moved] == [("from0", 0.0, math.inf), ("w_up", 0.5, 0.0)]
    assert [(c.dataset, c.old["status"], c.new["status"]) for c in result.status_changed] == [("broke", "ok", "failed")]
    assert (result.new, result.gone, result.common) == (["fresh"], ["old"], 5)
    assert [c.dataset for c in compare(now, before, "d", None, threshold=0.001).moved] == ["from0", "w_up", "b_tiny"]


def test_partitions_latest_and_previous(tmp_path: Path) -> None:
    with pytest.raises(MissingError, match="no such table directory"):
        run_dates(tmp_path / "nope")
    with pytest.raises(MissingError, match=r"no run_date=\* partition"):
        find_partition(tmp_path, None)
    for date in ("2026-01-03", "2025-12-31", "2026-01-01"):
        (tmp_path / f"run_date={date}").mkdir()
        (tmp_path / f"run_date={date}" / "_manifest.json").write_text("{}")
    (tmp_path / "run_date=2026-01-01" / "_manifest.json").unlink()  # a table written before manifests
    (tmp_path / "run_date=2026-01-01" / "part-0.parquet").write_bytes(b"PAR1")
    (tmp_path / "run_date=2026-01-04").mkdir()  # an empty folder is no partition
    (tmp_path / "_staging").mkdir()
    assert run_dates(tmp_path) == ["2025-12-31", "2026-01-01", "2026-01-03"]
    assert find_partition(tmp_path, None).name == "run_date=2026-01-03"
    assert previous_partition(find_partition(tmp_path, "2026-01-03")).name == "run_date=2026-01-01"
    assert previous_partition(find_partition(tmp_path, "2025-12-31")) is None
    with pytest.raises(MissingError, match="no partition run_date=2026-01-02"):
        find_partition(tmp_path, "2026-01-02")
