"""Robust, weighted and through-origin fits through the real command, in every layout."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import write_parquet
from tests.jobs.test_fit_lines import DATE, read_rows, run_job

sm = pytest.importorskip("statsmodels.api")


def _weighted(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    x = rng.uniform(0, 10, n)
    sd = rng.uniform(0.1, 2.0, n)
    return {"x": x, "y": 1.5 * x - 2 + rng.normal(0, sd), "w": 1 / sd**2}


@pytest.fixture(scope="module")
def weighted_input(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Three file datasets with weights, one directory of parts, and a file without the weight column."""
    root = tmp_path_factory.mktemp("weighted")
    rng = np.random.default_rng(3)
    data = {}
    for name in ("a", "b", "c"):
        data[name] = _weighted(rng, 400)
        write_parquet(root / "files" / f"{name}.parquet", **data[name])
    parts = [_weighted(rng, 150) for _ in range(3)]
    for i, part in enumerate(parts):
        write_parquet(root / "parts" / "d" / f"part-{i}.parquet", **part)
    data["parts"] = {k: np.concatenate([p[k] for p in parts]) for k in ("x", "y", "w")}
    write_parquet(root / "files" / "no_weights.parquet", x=np.arange(5.0), y=np.arange(5.0))
    return root, data


def _wls(d: dict, intercept: bool = True) -> object:
    design = sm.add_constant(d["x"]) if intercept else d["x"][:, None]
    return sm.WLS(d["y"], design, weights=d["w"]).fit()


@pytest.mark.parametrize("form", ["gram", "rows"])
def test_weighted_files_match_statsmodels(weighted_input: tuple[Path, dict], tmp_path: Path, form: str) -> None:
    root, data = weighted_input
    done = run_job(
        "--input", str(root / "files"), "--output", str(tmp_path / "t"), "--run_date", DATE,
        "--weight_column", "w", "--loss_form", form,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {r["dataset"]: r for r in read_rows(tmp_path / "t")}
    for name in ("a", "b", "c"):
        ref = _wls(data[name])
        row = rows[name]
        assert row["status"] == "ok"
        assert row["w"] == pytest.approx(ref.params[1], rel=1e-9) and row["b"] == pytest.approx(ref.params[0], rel=1e-9)
        assert row["w_stderr"] == pytest.approx(ref.bse[1], rel=1e-9)
        assert row["b_stderr"] == pytest.approx(ref.bse[0], rel=1e-9)
        assert row["scale"] == pytest.approx(np.sqrt(ref.scale), rel=1e-9)
        assert row["n_outliers"] is None
    missing = rows["no_weights"]
    assert missing["status"] == "failed" and "missing column 'w'" in missing["error"]


def test_weighted_parts_merge_to_the_whole(weighted_input: tuple[Path, dict], tmp_path: Path) -> None:
    root, data = weighted_input
    done = run_job(
        "--input", str(root / "parts"), "--output", str(tmp_path / "t"), "--run_date", DATE,
        "--group_by", "directory", "--weight_column", "w",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (row,) = read_rows(tmp_path / "t")
    ref = _wls(data["parts"])
    assert row["status"] == "ok" and row["n_rows"] == 450
    assert row["w"] == pytest.approx(ref.params[1], rel=1e-9) and row["w_stderr"] == pytest.approx(ref.bse[1], rel=1e-9)


@pytest.mark.parametrize("form", ["gram", "rows"])
def test_weighted_huber_and_origin_fits_on_a_long_table(tmp_path: Path, form: str) -> None:
    """column:NAME grouping carries the weights through the key split, both loss forms."""
    rng = np.random.default_rng(4)
    keys, xs, ys, ws = [], [], [], []
    for key, slope in (("k1", 0.5), ("k2", 3.0)):
        d = _weighted(rng, 300)
        d["y"] = slope * d["x"] + rng.normal(0, 0.1, 300)
        keys += [key] * 300
        xs.append(d["x"])
        ys.append(d["y"])
        ws.append(d["w"])
    table = pa.table({"key": keys, "x": np.concatenate(xs), "y": np.concatenate(ys), "w": np.concatenate(ws)})
    (tmp_path / "long").mkdir()
    pq.write_table(table.slice(0, 350), tmp_path / "long" / "p0.parquet")
    pq.write_table(table.slice(350), tmp_path / "long" / "p1.parquet")
    done = run_job(
        "--input", str(tmp_path / "long"), "--output", str(tmp_path / "t"), "--run_date", DATE,
        "--group_by", "column:key", "--weight_column", "w", "--no_intercept", "--loss_form", form,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {r["dataset"]: r for r in read_rows(tmp_path / "t")}
    for i, key in enumerate(("k1", "k2")):
        part = slice(300 * i, 300 * (i + 1))
        ref = _wls({"x": xs[i], "y": ys[i], "w": ws[i]}, intercept=False)
        assert rows[key]["status"] == "ok" and rows[key]["b"] == 0.0 and rows[key]["b_stderr"] is None
        assert rows[key]["w"] == pytest.approx(ref.params[0], rel=1e-9), part


def test_huber_through_the_command(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 10, 500)
    y = 2 * x + 1 + rng.normal(0, 0.2, 500)
    y[:25] += 300
    write_parquet(tmp_path / "in" / "spiky.parquet", x=x, y=y)
    done = run_job(
        "--input", str(tmp_path / "in"), "--output", str(tmp_path / "t"), "--run_date", DATE, "--loss", "huber"
    )
    assert done.returncode == 0, done.stderr
    (row,) = read_rows(tmp_path / "t")
    assert row["status"] == "ok" and abs(row["w"] - 2) < 0.02 and abs(row["b"] - 1) < 0.1
    assert row["n_outliers"] >= 25 and row["scale"] < 0.3 and row["w_stderr"] is None
    # the partition's manifest records the loss
    manifest = (tmp_path / "t" / f"run_date={DATE}" / "_manifest.json").read_text()
    assert '"loss": "huber"' in manifest and '"huber_epsilon": 1.35' in manifest


def test_a_dataset_too_large_for_the_row_form_fails_naming_the_limit(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    for name, n in (("small", 80), ("large", 500)):
        x = rng.uniform(0, 1, n)
        write_parquet(tmp_path / "in" / f"{name}.parquet", x=x, y=x + rng.normal(0, 0.1, n))
    done = run_job(
        "--input", str(tmp_path / "in"), "--output", str(tmp_path / "t"), "--run_date", DATE,
        "--loss", "huber", "--max_rows_in_memory", "100",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {r["dataset"]: r for r in read_rows(tmp_path / "t")}
    assert rows["small"]["status"] == "ok"
    assert rows["large"]["status"] == "failed" and "--max_rows_in_memory" in rows["large"]["error"]
    assert "100 rows" in rows["large"]["error"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--loss", "absolute"], "--loss must be one of squared, huber"),
        (["--huber_epsilon", "1"], "--huber_epsilon must be a number > 1"),
        (["--weight_column", ""], "--weight_column must name a column"),
    ],
)
def test_bad_fit_options_exit_2_with_one_line(tmp_path: Path, flags: list[str], message: str) -> None:
    write_parquet(tmp_path / "in" / "a.parquet", x=np.arange(3.0), y=np.arange(3.0))
    done = run_job("--input", str(tmp_path / "in"), "--output", str(tmp_path / "t"), *flags)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr and "Traceback" not in done.stderr


def test_partitions_before_the_new_columns_still_load_beside_new_ones(tmp_path: Path) -> None:
    """A partition in the old 15-column schema and a new one: DuckDB (union_by_name) and --incremental read both."""
    source = tmp_path / "in"
    write_parquet(source / "a.parquet", x=np.arange(10.0), y=2 * np.arange(10.0) + 1)
    table = tmp_path / "t"
    assert run_job("--input", str(source), "--output", str(table), "--run_date", "2026-01-01").returncode == 0
    old = table / "run_date=2026-01-01"
    for path in old.glob("*.parquet"):  # rewrite it as tapefit wrote it before robust fits
        rows = pq.read_table(path)
        pq.write_table(rows.drop(["w_stderr", "b_stderr", "scale", "n_outliers"]), path)
    done = run_job("--input", str(source), "--output", str(table), "--run_date", "2026-01-02", "--incremental")
    assert done.returncode == 0, done.stderr
    files = f"read_parquet('{table}/*/*.parquet', hive_partitioning = true, union_by_name = true)"
    query = f"SELECT run_date, w, scale FROM {files} ORDER BY run_date"
    got = duckdb.sql(query).fetchall()
    assert [(str(d), round(w, 12)) for d, w, _ in got] == [("2026-01-01", 2.0), ("2026-01-02", 2.0)]
    assert got[0][2] is None
