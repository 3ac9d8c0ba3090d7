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
