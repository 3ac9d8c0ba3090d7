"""The benchmark's pieces without TensorFlow or Beam: workloads, baselines, measuring, reporting."""

from __future__ import annotations

import dataclasses
import math
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from benchmarks import baselines, measure
from benchmarks.contenders import Contender, Outcome
from benchmarks.eager import load
from benchmarks.moments import Moments
from benchmarks.report import compare, evaluate_targets, format_table, rel_diff, result_row
from benchmarks.results import ALL_ROWS, Fit, read_fits, write_fits
from benchmarks.workloads import QUICK, Workload, dataset_id, ensure, generate, parquet_files

TINY = {
    "file": Workload("S", "file", 7, 30, 7, eager_sample=2),
    "directory": Workload("L", "directory", 1, 10_000, 3, eager_sample=0),
    "column": Workload("K", "column", 9, 40, 2, eager_sample=2),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    cache = tmp_path_factory.mktemp("cache")
    return {layout: ensure(w, cache) for layout, w in TINY.items()}


def _rows(root) -> list:
    return [pq.read_table(p).to_pylist() for p in parquet_files(root)]


@pytest.mark.parametrize("layout", sorted(TINY))
def test_generation_is_deterministic_with_the_right_shape(tmp_path, inputs, layout):
    workload = TINY[layout]
    generate(workload, tmp_path / "again")
    assert _rows(tmp_path / "again") == _rows(inputs[layout])
    files = parquet_files(inputs[layout])
    assert len(files) == workload.n_files
    tables = [pq.read_table(f) for f in files]
    assert sum(t.num_rows for t in tables) == workload.total_rows
    assert all(t.schema.field("x").type == "double" and t.schema.field("y").type == "double" for t in tables)


def test_other_workloads_differ(tmp_path):
    generate(dataclasses.replace(TINY["file"], name="M"), tmp_path / "m")
    generate(TINY["file"], tmp_path / "s")
    assert _rows(tmp_path / "m") != _rows(tmp_path / "s")


def test_an_interrupted_generation_is_redone(tmp_path):
    workload = TINY["file"]
    data = ensure(workload, tmp_path)
    (tmp_path / f"{workload.key}.done").unlink()
    next(data.rglob("*.parquet")).write_bytes(b"half a file")
    ensure(workload, tmp_path)
    assert sum(pq.read_table(p).num_rows for p in parquet_files(data)) == workload.total_rows


def test_quick_workloads_are_the_four_layout_shapes():
    assert [w.layout for w in QUICK.values()] == ["file", "file", "directory", "column"]


def test_dataset_ids_follow_tapefit():
    assert dataset_id("/in/g000/d000001.parquet", "/in", "file") == "g000/d000001"
    assert dataset_id("/in/part-00001.parquet", "/in", "directory") == "."
    assert dataset_id("/in/store=x/part-0.parquet", "/in", "directory") == "store=x"


def test_rel_diff():
    assert rel_diff(1.0 + 1e-12, 1.0) == pytest.approx(1e-12)
    assert rel_diff(-2.0, -1.0) == 1.0
    assert rel_diff(0.0, 0.0) == 0.0
    assert rel_diff(1e-290, 0.0) == pytest.approx(1e10)  # divided by a tiny floor, never by zero
    assert rel_diff(None, 1.0) == math.inf
    assert rel_diff(float("nan"), 1.0) == math.inf


def test_moments_merged_in_batches_equal_one_pass():
    rng = np.random.default_rng(0)
    codes, x = rng.integers(0, 5, 1000), rng.normal(3, 2, 1000)
    y = 1.5 * x - 2 + rng.normal(0, 0.1, 1000)
    whole, parts = Moments(), Moments()
    whole.add(codes, x, y)
    for lo in range(0, 1000, 137):
        parts.add(codes[lo : lo + 137], x[lo : lo + 137], y[lo : lo + 137])
    for k in range(5):
        w, b = np.polyfit(x[codes == k], y[codes == k], 1)
        assert whole.fit()[0][k] == pytest.approx(w, rel=1e-12) and parts.fit()[0][k] == pytest.approx(w, rel=1e-12)
        assert parts.fit()[1][k] == pytest.approx(b, rel=1e-12)


@pytest.mark.parametrize("layout", sorted(TINY))
def test_baselines_agree_and_name_datasets_like_tapefit(inputs, layout):
    workload, root = TINY[layout], inputs[layout]
    duck, numpy_fits = baselines.fit_duckdb(root, layout), baselines.fit_numpy(root, layout)
    assert sorted(duck) == sorted(numpy_fits) == workload.ids()
    assert all(f.n_rows == workload.rows for f in duck.values())
    checks = compare(numpy_fits, duck, workload.ids(), gives_fits=True)
    assert checks["missing"] == checks["extra"] == checks["n_rows_mismatch"] == 0
    assert checks["max_rel_diff_w"] < 1e-9 and checks["max_rel_diff_b"] < 1e-9
    floor = baselines.read_floor(root, layout)
    assert sum(f.n_rows for f in floor.values()) == workload.total_rows
    assert (set(floor) == {ALL_ROWS}) if layout == "column" else (sorted(floor) == workload.ids())
    assert compare(floor, duck, workload.ids(), gives_fits=False)["n_rows_mismatch"] == 0


@pytest.mark.parametrize("layout", ["file", "column"])
def test_eager_loads_the_sampled_datasets(inputs, layout):
    ids = TINY[layout].ids()[:2]
    data = load(inputs[layout], layout, ids)
    assert list(data) == ids and all(x.size == y.size == TINY[layout].rows for x, y in data.values())


def test_fits_round_trip(tmp_path):
    fits = {"a": Fit(1.0, 2.0, 3), "b/c": Fit(None, None, 4, "failed", 0.5)}
    write_fits(tmp_path / "f.parquet", fits)
    assert read_fits(tmp_path / "f.parquet") == fits


def test_measure_counts_an_orphaned_grandchild():
    child = "a = bytearray(200 << 20); import time; time.sleep(0.5)"
    script = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {child!r}])"  # exits without waiting
    result = measure.measure([sys.executable, "-c", script])
    assert result["returncode"] == 0 and result["subreaper"]
    assert result["max_rss_mb"] >= 200 and result["max_rss_mb"] >= result["sampled_max_rss_mb"] - 1


def test_measure_timeout():
    result = measure.measure([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
    assert result["returncode"] is None and result["wall_s"] < 10


def test_report_rows_and_targets():
    workload = TINY["file"]
    ref = {i: Fit(2.0, 1.0, 30) for i in workload.ids()}
    outcomes = {
        "duckdb": Outcome("ok", {"wall_s": 1.0, "max_rss_mb": 100.0}, ref),
        "tapefit-x": Outcome("ok", {"wall_s": 2.5, "max_rss_mb": 700.0}, {**ref, "g000/d000000": Fit(2.0, 1.1, 30)}),
        "eager": Outcome("ok", {"wall_s": 5.0}, {i: Fit(2.0, 1.0, 30, "ok", 0.25) for i in workload.ids()[:2]}),
    }
    kinds = {"duckdb": "baseline", "tapefit-x": "tapefit", "eager": "eager"}
    rows = [result_row(workload, Contender(n, kinds[n]), o, outcomes) for n, o in outcomes.items()]
    assert rows[1]["ratio_vs_duckdb"] == 2.5 and rows[1]["max_rel_diff_b"] == pytest.approx(0.1)
    assert rows[2]["speedup_per_dataset"]["tapefit-x"] == pytest.approx(0.25 / (2.5 / 7))
    met = {(t["target"], t["contender"]): t["met"] for t in evaluate_targets(rows)}
    assert met == {
        ("wall/duckdb", "tapefit-x"): False,
        ("rel diff w,b (all ok)", "tapefit-x"): False,
        ("eager/tapefit-x per dataset", "eager"): False,
    }
    assert "tapefit-x" in format_table(rows)
