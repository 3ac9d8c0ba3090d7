"""The committed sample data: reproducible from its generator, and fitted as its truth says."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import ROOT
from tests.jobs.test_fit_lines import read_rows, run_job

SAMPLE = ROOT / "sample_data"


def _truth(layout: str) -> dict[str, dict]:
    with (SAMPLE / "truth.csv").open(encoding="utf-8") as handle:
        return {row["dataset"]: row for row in csv.DictReader(handle) if row["layout"] == layout}


def test_generator_reproduces_the_committed_sample_data(tmp_path: Path) -> None:
    out = tmp_path / "sample"
    (out / "reference").mkdir(parents=True)
    for source in (SAMPLE / "reference").iterdir():
        (out / "reference" / source.name).write_bytes(source.read_bytes())
    done = subprocess.run(
        [sys.executable, "-m", "jobs.make_sample_data", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    committed = sorted(p.relative_to(SAMPLE) for p in SAMPLE.rglob("*") if p.is_file())
    assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()) == committed
    for relative in committed:
        old, new = SAMPLE / relative, out / relative
        try:  # Parquet bytes carry the writer's version: compare the data itself
            assert pq.read_table(new).equals(pq.read_table(old), check_metadata=False), relative
        except Exception:  # noqa: BLE001 (not Parquet, e.g. the broken files or CSV)
            assert new.read_bytes() == old.read_bytes(), relative


@pytest.mark.parametrize(
    ("layout", "flags"),
    [
        ("files", []),
        ("parts", ["--group_by", "directory"]),
        ("long", ["--group_by", "column:dataset"]),
        ("outliers", []),
        ("weighted", ["--weight_column", "weight"]),
    ],
)
def test_job_on_sample_data_matches_truth(tmp_path: Path, layout: str, flags: list[str]) -> None:
    done = run_job("--input", str(SAMPLE / layout), "--output", str(tmp_path / "t"), "--run_date", "2026-01-01", *flags)
    assert done.returncode == 0, done.stderr
    truth = _truth(layout)
    rows = read_rows(tmp_path / "t", "2026-01-01")
    assert sorted(r["dataset"] for r in rows) == sorted(truth)
    for row in rows:
        expected = truth[row["dataset"]]
        assert row["status"] == expected["expected_status"], row
        if row["status"] == "ok":
            w, b = float(expected["lstsq_w"]), float(expected["lstsq_b"])
            assert abs(row["w"] - w) <= 1e-9 * (1 + abs(w)), row
            tolerance = 1e-6 * abs(b) if "far" in row["dataset"] else 1e-9 * (1 + abs(b))
            assert abs(row["b"] - b) <= tolerance, row


def test_robust_and_weighted_truth_against_independent_references() -> None:
    import statsmodels.api as sm

    [spikes] = _truth("outliers").values()
    data = pq.read_table(SAMPLE / "outliers" / "spikes.parquet").to_pydict()
    x, y = np.array(data["x"]), np.array(data["y"])
    line = float(spikes["true_w"]) * x + float(spikes["true_b"])
    shifted = (y - line) / float(spikes["noise_sd"])
    assert x.size == 1000 and ((shifted > 50) == (shifted > 10)).all() and (shifted > 50).sum() == 30
    assert shifted.max() < 100 + 5 and (x[shifted > 50] > 60).all()  # spikes of 50–100 σ while x > 60
    ols = sm.OLS(y, sm.add_constant(x)).fit().params
    assert [float(spikes["lstsq_b"]), float(spikes["lstsq_w"])] == pytest.approx(ols, rel=1e-12)
    assert abs(float(spikes["lstsq_w"]) - float(spikes["true_w"])) > 0.05  # dragged well away by the spikes

    [weighted] = _truth("weighted").values()
    assert weighted["weight_column"] == "weight" and all(row["weight_column"] == "" for row in _truth("files").values())
    data = pq.read_table(SAMPLE / "weighted" / "heteroscedastic.parquet").to_pydict()
    x, y, c = (np.array(data[name], dtype=float) for name in ("x", "y", "weight"))
    keep = np.isfinite(c)
    assert keep.sum() == 596 and np.allclose(c[keep], 1 / (0.2 + 0.1 * x[keep]) ** 2, rtol=1e-12)
    wls = sm.WLS(y[keep], sm.add_constant(x[keep]), weights=c[keep]).fit().params
    assert [float(weighted["lstsq_b"]), float(weighted["lstsq_w"])] == pytest.approx(wls, rel=1e-12)


def test_huber_on_the_outliers_lands_near_the_true_line_and_show_results_says_so(tmp_path: Path) -> None:
    table = tmp_path / "t"
    done = run_job("--input", str(SAMPLE / "outliers"), "--output", str(table), "--run_date", "2026-01-01",
                   "--loss", "huber")  # fmt: skip
    assert done.returncode == 0, done.stderr
    [row] = read_rows(table, "2026-01-01")
    [truth] = _truth("outliers").values()
    true_w, true_b, lstsq_w = (float(truth[k]) for k in ("true_w", "true_b", "lstsq_w"))
    assert row["status"] == "ok" and row["n_outliers"] >= 30 and 0.5 < row["scale"] < 1.5
    assert abs(row["w"] - true_w) < 0.01 < 0.05 < abs(lstsq_w - true_w) and abs(row["b"] - true_b) < 0.5
    shown = subprocess.run(
        [sys.executable, "-m", "jobs.show_results", "--table", str(table), "--truth", str(SAMPLE / "truth.csv"),
         "--layout", "outliers"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[1].startswith("fit: loss huber, ε = 1.35") and "n_outliers" in lines[2] and "w lstsq" in lines[2]
    assert lines[-1].startswith("largest |w − true_w|/(1+|true_w|) over 1 ok datasets with a known line: huber ")
