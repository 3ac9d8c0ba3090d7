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


def _manifest(**fit: object) -> dict:
    """A manifest as the job writes it, with the fit options given (and the counts show_results prints)."""
    return {
        "run_id": "r",
        "counts": {"datasets": 3, "ok": 3, "not_converged": 0, "diverged": 0, "failed": 0},
        "rows": {"used": 30, "dropped": 0, "null_key": 0},
        "options": {"group_by": "file", "x_column": "x", "y_column": "y", "fit": fit},
    }


def _write(table: Path, results: dict[str, FitResult], manifest: dict | None, schema: pa.Schema = SCHEMA) -> None:
    folder = table / "run_date=2026-01-01"
    folder.mkdir(parents=True)
    rows = [result_row(DatasetRef(name, f"in/{name}", (f"in/{name}",)), r, "r", NOW) for name, r in results.items()]
    table_rows = pa.Table.from_pylist(rows, schema=SCHEMA).select(schema.names)
    pq.write_table(table_rows, folder / "part-0.parquet")
    if manifest is not None:
        (folder / "_manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def _show(capsys: pytest.CaptureFixture, *args: str) -> tuple[list[str], list[dict[str, str]]]:
    """Run show_results; return its lines and the table's rows as dicts by header."""
    assert main(list(args)) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("dataset "))
    header = lines[start].split()
    cells = [line.split() for line in lines[start + 2 :] if line and not line.startswith(("every", "largest", "no "))]
    return lines, [dict(zip(header, row, strict=False)) for row in cells]


def test_squared_partition_shows_standard_errors_and_scale(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = {
        "a" * 70: FitResult(Status.OK, w=1.5, b=-2.0, w_stderr=0.0123456, b_stderr=1.5e-7, scale=0.987654321),
        "b": FitResult(Status.OK, w=-1.23456789e6, b=9.87e-5, w_stderr=12345.678, b_stderr=3.0, scale=4.4e-9),
        "c": FitResult(Status.FAILED, error="missing column 'weight' " + "x" * 200),
    }
    _write(tmp_path / "t", results, _manifest(loss="squared", intercept=True, weights="weight", huber_epsilon=1.35))
    lines, rows = _show(capsys, "--table", str(tmp_path / "t"))
    assert lines[1] == "fit: loss squared (least squares) · weights column 'weight' · y = w·x + b"
    header = lines[2].split()
    assert header[:8] == ["dataset", "status", "w", "w_stderr", "b", "b_stderr", "scale", "final_loss"]
    assert "n_outliers" not in header
    [b] = [row for row in rows if row["dataset"] == "b"]
    assert (b["w"], b["w_stderr"], b["b_stderr"], b["scale"]) == ("-1.23457e+06", "1.2e+04", "3", "4.4e-09")
    assert rows[0]["w_stderr"] == "0.012" and rows[0]["scale"] == "0.9877"
    assert all(len(line) < 250 for line in lines)


def test_huber_partition_shows_scale_and_outliers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = {
        "a": FitResult(Status.OK, w=1.5, b=-2.0, scale=0.5, n_outliers=17),
        "b": FitResult(Status.OK, w=2.0, b=0.0, scale=1.25, n_outliers=0),
    }
    _write(tmp_path / "t", results, _manifest(loss="huber", intercept=False, weights=None, huber_epsilon=2.5))
    lines, rows = _show(capsys, "--table", str(tmp_path / "t"))
    assert lines[1] == "fit: loss huber, ε = 2.5 (σ estimated jointly) · weights none: every row weighs 1 · " + (
        "y = w·x, through the origin (b = 0)"
    )
    header = lines[2].split()
    assert header[:6] == ["dataset", "status", "w", "b", "scale", "n_outliers"] and "w_stderr" not in header
    assert [(r["scale"], r["n_outliers"]) for r in rows] == [("0.5", "17"), ("1.25", "0")]


def test_partition_written_before_the_new_columns(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    old_schema = pa.schema([SCHEMA.field(name) for name in SCHEMA.names[:15]])
    results = {"a": FitResult(Status.OK, w=1.0, b=2.0, r2=0.5), "b": FitResult(Status.FAILED, error="bad")}
    manifest = _manifest(learning_rate=0.1, max_steps=1000)  # before loss, weights, intercept
    _write(tmp_path / "t", results, manifest, old_schema)
    lines, rows = _show(capsys, "--table", str(tmp_path / "t"))
    assert lines[1] == "fit: loss squared (least squares) · weights none: every row weighs 1 · y = w·x + b"
    assert lines[2].split()[:5] == ["dataset", "status", "w", "b", "final_loss"]
    assert [r["dataset"] for r in rows] == ["a", "b"]
    _write(tmp_path / "no_manifest", results, None, old_schema)
    lines, _ = _show(capsys, "--table", str(tmp_path / "no_manifest"), "--layout", "files")
    assert "no _manifest.json" in lines[0] and lines[1].startswith("dataset ")


def _truth_csv(path: Path) -> Path:
    header = "layout,dataset,true_w,true_b,noise_sd,lstsq_w,lstsq_b,weight_column,expected_status,note\n"
    path.write_text(
        header
        + "demo,spikes,2.0,1.0,0.5,2.5,-3.0,,ok,y spikes\n"
        + "demo,weighted,1.0,0.0,,1.1,0.1,weight,ok,weights 1/variance\n"
        + "demo,plain,3.0,1.0,0.5,3.0,1.0,,ok,clean\n",
        encoding="utf-8",
    )
    return path


def test_truth_compares_only_the_runs_own_closed_form(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    truth = _truth_csv(tmp_path / "truth.csv")
    results = {
        "spikes": FitResult(Status.OK, w=2.01, b=0.9, scale=0.5, n_outliers=3),
        "weighted": FitResult(Status.OK, w=1.05, b=0.2, scale=0.4, n_outliers=1),
        "plain": FitResult(Status.OK, w=3.0, b=1.0, scale=0.5, n_outliers=0),
    }
    _write(tmp_path / "huber", results, _manifest(loss="huber", intercept=True, weights=None, huber_epsilon=1.35))
    lines, _ = _show(capsys, "--table", str(tmp_path / "huber"), "--truth", str(truth), "--layout", "demo")
    assert "w lstsq" in lines[2] and "w closed form" not in lines[2]
    assert lines[-2] == "loss huber has no closed form; the lstsq columns are least squares, for comparison"
    assert lines[-1] == (
        "largest |w − true_w|/(1+|true_w|) over 3 ok datasets with a known line: huber 0.025 (weighted), "
        "least squares 0.167 (spikes); same for b: huber 0.2, least squares 2"
    )
    squared = {name: FitResult(Status.OK, w=float(w), b=float(b)) for name, w, b in [("spikes", 2.5, -3.0),
               ("weighted", 1.1, 0.1), ("plain", 3.0, 1.0 + 1e-9)]}  # fmt: skip
    _write(tmp_path / "squared", squared, _manifest(loss="squared", intercept=True, weights=None))
    lines, _ = _show(capsys, "--table", str(tmp_path / "squared"), "--truth", str(truth), "--layout", "demo")
    assert lines[-2] == "1 ok dataset(s) not compared: truth.csv weighs their closed form differently (this run: none)"
    assert lines[-1].startswith("largest |w − lstsq_w|/(1+|lstsq_w|) over 2 ok datasets: 0 (")
    assert "same for b: 5e-10 (plain)" in lines[-1]


def test_a_layout_missing_from_truth_is_one_line_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _write(tmp_path / "t", {"a": FitResult(Status.OK, w=1.0, b=2.0)}, _manifest())
    truth = _truth_csv(tmp_path / "truth.csv")
    assert main(["--table", str(tmp_path / "t"), "--truth", str(truth), "--layout", "nope"]) == 2
    assert capsys.readouterr().err == (f"show_results: error: no rows of layout 'nope' in {truth} (layouts: demo)\n")
