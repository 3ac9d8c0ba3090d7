"""DuckDB, the pyarrow floor and numpy on every layout; the eager loop's loading; result files."""

from __future__ import annotations

import pytest

from benchmarks import baselines
from benchmarks.eager import load
from benchmarks.report import compare
from benchmarks.results import ALL_ROWS, Fit, read_fits, write_fits
from tests.benchmarks.conftest import TINY


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
