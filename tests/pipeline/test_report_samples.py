"""Re-reading source data for the report's scatter panels (pipeline.report.samples)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipeline.report.samples import closed_form, load_panels
from tests.conftest import lstsq, write_parquet


def _row(dataset: str, source: str, n_rows: int, status: str = "ok") -> dict:
    return {"dataset": dataset, "source": source, "n_rows": n_rows, "status": status, "w": 1.0, "b": 0.0}


def _manifest(group_by: str, input_pattern: str = "") -> dict:
    return {"input": input_pattern, "options": {"group_by": group_by, "x_column": "x", "y_column": "y"}}


@pytest.mark.parametrize("center, scale", [(0.0, 1.0), (1e6, 10.0), (-3e4, 1e-3), (1e200, 1e199)])
def test_closed_form_matches_numpy_lstsq(center: float, scale: float) -> None:
    rng = np.random.default_rng(3)
    x = center + scale * rng.uniform(-1, 1, 500)
    y = 2.5 * x - 7.0 + scale * rng.normal(0, 0.1, 500)
    w, b = closed_form(x, y)
    if center < 1e100:
        ref_w, ref_b = lstsq(x - center, y)  # centred reference: the uncentred one loses digits far from 0
        ref_b -= ref_w * center
        assert w == pytest.approx(ref_w, rel=1e-9) and b == pytest.approx(ref_b, rel=1e-9, abs=1e-9 * abs(y).max())
    else:
        assert np.isfinite(w) and w == pytest.approx(2.5, rel=0.01)
    assert closed_form(np.array([1.0]), np.array([2.0])) is None
    assert closed_form(np.full(3, 4.0), np.arange(3.0)) is None
    assert closed_form(np.arange(3.0), np.full(3, 4.0)) == (0.0, 4.0)


def test_file_layout_samples_valid_points_and_notes_what_it_cannot_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 10, 5000)
    y = 3 * x + 1 + rng.normal(0, 0.5, 5000)
    x[:10] = np.nan
    good = write_parquet(tmp_path / "good.parquet", x=x, y=y)
    write_parquet(tmp_path / "text.parquet", x=["a", "b"], y=[1.0, 2.0])
    rows = [
        _row("good", str(good), 4990),
        _row("gone", str(tmp_path / "gone.parquet"), 7),
        _row("text", str(tmp_path / "text.parquet"), 0, "failed"),
    ]
    panels = load_panels(rows, _manifest("file"), max_points=1000, seed=1)
    assert [p.row["dataset"] for p in panels] == ["good", "gone", "text"]
    first = panels[0]
    assert first.x.size == 1000 and first.n_valid == 4990 and np.isfinite(first.x).all() and first.note == ""
    assert first.optimum == pytest.approx(lstsq(x[10:], y[10:]), rel=1e-9)
    assert np.array_equal(load_panels(rows[:1], _manifest("file"), 1000, 1)[0].x, first.x)  # seeded
    assert panels[1].x.size == 0 and panels[1].note.startswith("cannot read") and "gone.parquet" in panels[1].note
    assert panels[2].x.size == 0 and "has type string" in panels[2].note
    assert "no _manifest.json" in load_panels(rows[:1], None)[0].note


def test_directory_and_column_layouts(tmp_path: Path) -> None:
    for i in range(3):
        write_parquet(tmp_path / f"parts/store=a/part-{i}.parquet", x=[i, i + 0.5], y=[2.0 * i, 2.0 * i + 1])
    (tmp_path / "parts/store=a/_SUCCESS").write_text("")
    write_parquet(tmp_path / "parts/store=a/nested/part-9.parquet", x=[100.0, 200.0], y=[0.0, 0.0])
    [panel] = load_panels([_row("store=a", str(tmp_path / "parts/store=a"), 6)], _manifest("directory"))
    assert sorted(panel.x.tolist()) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5] and panel.optimum == pytest.approx((2.0, 0.0))

    keys = pa.array(["k1", "k2", None, "k1"])
    write_parquet(tmp_path / "long/p0.parquet", dataset=keys, x=[1.0, 5.0, 9.0, 2.0], y=[1.0, 5.0, 9.0, 2.0])
    write_parquet(tmp_path / "long/p1.parquet", dataset=["k1", "k3"], x=[3.0, 0.0], y=[3.0, 0.0])
    (tmp_path / "long/p2.parquet").write_bytes(b"not parquet")
    manifest = _manifest("column:dataset", str(tmp_path / "long"))
    source = str(tmp_path / "long")
    k1, k9 = load_panels([_row("k1", source, 3), _row("k9", source, 2)], manifest)
    assert k1.x.tolist() == [1.0, 2.0, 3.0] and k1.optimum == pytest.approx((1.0, 0.0))
    assert "1 unreadable file(s)" in k1.note and "p2.parquet" in k1.note
    assert k9.x.size == 0 and "no rows with this key" in k9.note


def _wls(x: np.ndarray, y: np.ndarray, c: np.ndarray, intercept: bool = True) -> tuple[float, float]:
    """The independent reference for the weighted and through-origin lines: statsmodels WLS."""
    import statsmodels.api as sm

    design = np.column_stack([x, np.ones_like(x)]) if intercept else x[:, None]
    params = sm.WLS(y, design, weights=c).fit().params
    return float(params[0]), float(params[1]) if intercept else 0.0


@pytest.mark.parametrize("center, scale", [(0.0, 1.0), (1e6, 10.0), (-3e4, 1e-3)])
def test_weighted_closed_form_matches_statsmodels_wls(center: float, scale: float) -> None:
    rng = np.random.default_rng(7)
    x = center + scale * rng.uniform(-1, 1, 400)
    sd = scale * (0.05 + 0.5 * rng.uniform(0, 1, 400))
    y = -1.5 * x + 4.0 + rng.normal(0, 1, 400) * sd
    c = 1.0 / sd**2
    w, b = closed_form(x, y, c)
    y_center = -1.5 * center + 4.0
    ref_w, ref_b = _wls(x - center, y - y_center, c)  # centred reference (exact differences), mapped back
    ref_b += y_center - ref_w * center
    assert w == pytest.approx(ref_w, rel=1e-9) and b == pytest.approx(ref_b, rel=1e-9, abs=1e-9 * abs(y).max())
    assert (w, b) != pytest.approx(closed_form(x, y), rel=1e-6)  # the weights matter
    # zero weights carry no information: the same line as without those rows
    c0 = c.copy()
    c0[::3] = 0.0
    keep = c0 > 0
    assert closed_form(x, y, c0) == pytest.approx(closed_form(x[keep], y[keep], c[keep]), rel=1e-12)
    # weights scale-free: c and 1e300·c give the same line
    assert closed_form(x, y, c / c.max() * 1e300) == pytest.approx((w, b), rel=1e-12)
    # fewer than 2 positive-weight rows, or constant x among them: no line
    assert closed_form(x, y, np.where(np.arange(400) == 5, 1.0, 0.0)) is None
    same_x = np.where(np.arange(400) < 200, x[0], x)
    assert closed_form(same_x, y, np.where(np.arange(400) < 200, 1.0, 0.0)) is None


@pytest.mark.parametrize("weighted", [False, True])
def test_closed_form_through_the_origin_matches_statsmodels_and_numpy(weighted: bool) -> None:
    rng = np.random.default_rng(8)
    x = rng.uniform(1, 50, 300)
    y = 0.7 * x + rng.normal(0, 1, 300) * (1 + 0.1 * x)
    c = 1.0 / (1 + 0.1 * x) ** 2 if weighted else np.ones_like(x)
    w, b = closed_form(x, y, c if weighted else None, intercept=False)
    assert b == 0.0
    assert w == pytest.approx(_wls(x, y, c, intercept=False)[0], rel=1e-12)
    assert w == pytest.approx(float(np.sum(c * x * y) / np.sum(c * x * x)), rel=1e-12)
    # y = w·x exactly, far from 0 and near the top of the range
    assert closed_form(x * 1e300, x * 3e300, intercept=False) == pytest.approx((3.0, 0.0), rel=1e-12)
    assert closed_form(np.zeros(5), np.arange(5.0), intercept=False) is None
    assert closed_form(np.arange(5.0), np.zeros(5), intercept=False) == (0.0, 0.0)
    assert closed_form(np.full(5, 2.0), np.full(5, 3.0), intercept=False) == (1.5, 0.0)  # constant x is fine


def _fit_manifest(group_by: str, input_pattern: str = "", **fit: object) -> dict:
    manifest = _manifest(group_by, input_pattern)
    manifest["options"]["fit"] = {"loss": "squared", "huber_epsilon": 1.35, "intercept": True, "weights": None, **fit}
    return manifest


def test_weighted_panel_rereads_the_weight_column_and_drops_bad_weights(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    x = rng.uniform(0, 10, 300)
    c = rng.uniform(0.1, 5.0, 300)
    y = 2.0 * x + 1.0 + rng.normal(0, 1, 300) / np.sqrt(c)
    c[:4] = [np.nan, -1.0, np.inf, 0.0]  # NaN, negative, inf dropped; 0 kept (and weighs nothing)
    path = write_parquet(tmp_path / "d.parquet", x=x, y=y, c=pa.array(c))
    manifest = _fit_manifest("file", weights="c")
    [panel] = load_panels([_row("d", str(path), 297)], manifest)
    assert panel.n_valid == 297 and panel.note == ""
    assert panel.optimum == pytest.approx(_wls(x[4:], y[4:], c[4:]), rel=1e-9)
    assert panel.model.weights == "c" and panel.model.exact and "weighted" in panel.model.reference
    [missing] = load_panels([_row("d", str(path), 297)], _fit_manifest("file", weights="nope"))
    assert missing.x.size == 0 and "missing column 'nope'" in missing.note

    keys = pa.array(["a"] * 150 + ["b"] * 150)
    write_parquet(tmp_path / "long/p0.parquet", dataset=keys, x=x, y=y, c=pa.array(c))
    manifest = _fit_manifest("column:dataset", str(tmp_path / "long"), weights="c")
    a, b = load_panels([_row("a", str(tmp_path / "long"), 147), _row("b", str(tmp_path / "long"), 150)], manifest)
    assert a.optimum == pytest.approx(_wls(x[4:150], y[4:150], c[4:150]), rel=1e-9)
    assert b.optimum == pytest.approx(_wls(x[150:], y[150:], c[150:]), rel=1e-9) and a.note == b.note == ""


def test_through_origin_panel_and_old_manifest_without_fit_options(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    x = rng.uniform(1, 10, 200)
    y = 3.0 * x + 2.0 + rng.normal(0, 0.1, 200)
    path = write_parquet(tmp_path / "d.parquet", x=x, y=y)
    [origin] = load_panels([_row("d", str(path), 200)], _fit_manifest("file", intercept=False))
    assert origin.optimum == pytest.approx((float(x @ y / (x @ x)), 0.0), rel=1e-12)
    assert "origin" in origin.model.reference
    [old] = load_panels([_row("d", str(path), 200)], _manifest("file"))  # written before the fit options existed
    assert old.optimum == pytest.approx(lstsq(x, y), rel=1e-9) and old.model.loss == "squared" and old.model.intercept


def test_huber_panel_marks_outliers_and_compares_with_least_squares(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    x = rng.uniform(0, 10, 3000)
    y = 2.0 * x + 1.0 + rng.normal(0, 0.5, 3000)
    y[:90] += 40.0  # gross outliers
    path = write_parquet(tmp_path / "d.parquet", x=x, y=y)
    row = _row("d", str(path), 3000) | {"w": 2.0, "b": 1.0, "scale": 0.5, "n_outliers": 100}
    manifest = _fit_manifest("file", loss="huber", huber_epsilon=2.0)
    [panel] = load_panels([row], manifest, max_points=1000, seed=3)
    assert not panel.model.exact and panel.model.reference == "least squares, for comparison"
    assert panel.optimum == pytest.approx(lstsq(x, y), rel=1e-9)
    residual = np.abs(panel.y - 2.0 * panel.x - 1.0)
    assert panel.outliers.shape == panel.x.shape and np.array_equal(panel.outliers, residual > 2.0 * 0.5)
    assert panel.n_outliers == int((np.abs(y - 2.0 * x - 1.0) > 1.0).sum())
    [squared] = load_panels([row], _fit_manifest("file"), max_points=1000, seed=3)
    assert not squared.outliers.any() and squared.n_outliers is None
    [unfitted] = load_panels([row | {"status": "failed", "w": None, "b": None, "scale": None}], manifest)
    assert not unfitted.outliers.any() and unfitted.n_outliers is None
