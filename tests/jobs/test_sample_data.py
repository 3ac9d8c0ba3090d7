"""The committed sample data: reproducible from its generator, and fitted as its truth says."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

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
    [("files", []), ("parts", ["--group_by", "directory"]), ("long", ["--group_by", "column:dataset"])],
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
