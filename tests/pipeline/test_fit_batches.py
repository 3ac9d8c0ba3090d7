"""Batched fits: a dataset's result never depends on its batch-mates, and both loss forms agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.config.settings import FitConfig
from pipeline.fit import FitResult, LineFitter, Status
from pipeline.reduce.moments import concat, segment_moments
from tests.conftest import lstsq, norris

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


def _mixed_datasets() -> list[tuple[np.ndarray, np.ndarray]]:
    """Easy, hard, noisy, huge, constant, too short, with NaN: every path of the fit."""
    rng = np.random.default_rng(42)
    datasets = [norris()]
    for n in (2, 3, 50, 1000, 4000):
        scale = 10 ** rng.uniform(-3, 4)
        x = rng.normal(rng.uniform(-5, 5) * scale, scale, n)
        datasets.append((x, rng.normal() * x + rng.normal() * scale + rng.normal(0, scale, n)))
    x = 1e6 + rng.uniform(-10, 10, 300)
    datasets.append((x, 2.5 * x - 3 + rng.normal(0, 1, 300)))
    x = rng.uniform(1, 2, 40) * 1e300
    datasets.append((x, 3 * x))
    datasets.append((np.array([1.0, 2.0, 3.0]) * 1e200, np.array([1.0, 2.2, 2.7]) * 1e200))  # overflows
    datasets.append((np.arange(5.0), np.full(5, 7.0)))  # constant y
    datasets.append((np.full(4, 2.0), np.arange(4.0)))  # constant x
    datasets.append((np.array([1.0]), np.array([2.0])))
    datasets.append((np.array([1.0, np.nan, 3.0, 4.0]), np.array([2.0, 5.0, np.inf, 9.0])))
    datasets.append((np.linspace(0, 1000, 50), np.linspace(0, 1000, 50) * 2 + 1))
    return datasets


def _same(a: FitResult, b: FitResult, rel: float) -> None:
    assert (a.status, a.steps, a.n_rows, a.n_dropped, a.error) == (b.status, b.steps, b.n_rows, b.n_dropped, b.error)
    for name in ("w", "b", "final_loss", "r2"):
        got, want = getattr(a, name), getattr(b, name)
        assert (got is None) == (want is None), name
        if got is not None:
            assert got == pytest.approx(want, rel=rel, abs=1e-300), name


CONFIGS = [
    FitConfig(loss_form=form, standardize=standardize, max_steps=max_steps)
    for form in ("gram", "rows")
    for standardize, max_steps in ((True, 1000), (False, 1000), (True, 20))
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.loss_form}-std{int(c.standardize)}-{c.max_steps}")
def test_batch_results_equal_solo_results(config: FitConfig) -> None:
    fitter = LineFitter(config)
    datasets = _mixed_datasets()
    solo = [fitter.fit(x, y) for x, y in datasets]
    if config.loss_form == "rows":
        batched = fitter.fit_rows(datasets)
        reversed_batch = fitter.fit_rows(datasets[::-1])[::-1]
    else:
        moments = concat([segment_moments(x, y, np.zeros(1, np.int64)) for x, y in datasets])
        batched = fitter.fit_moments(moments)
        reversed_batch = fitter.fit_moments(moments.take(np.arange(len(datasets))[::-1]))[::-1]
    for alone, together, backwards in zip(solo, batched, reversed_batch, strict=True):
        _same(together, alone, 1e-12)
        _same(backwards, alone, 1e-12)
    statuses = {r.status for r in solo}
    assert Status.FAILED in statuses and (Status.OK in statuses or Status.NOT_CONVERGED in statuses)
    # each compiled loop is traced once, whatever the batch sizes
    assert fitter.trace_count == 1


def _sample_datasets() -> list[tuple[str, np.ndarray, np.ndarray]]:
    found = []
    for path in sorted((SAMPLE / "files").rglob("*.parquet")) + sorted((SAMPLE / "parts").rglob("*.parquet")):
        try:
            table = pq.read_table(path, columns=["x", "y"])
            found.append((str(path), *(table.column(c).to_numpy(zero_copy_only=False).astype(float) for c in "xy")))
        except Exception:  # noqa: BLE001, S112 (the broken samples are tested elsewhere)
            continue
    long = pq.read_table(SAMPLE / "long")
    keys = np.array(long.column("dataset").to_pylist(), dtype=object)
    for key in sorted({k for k in keys if k is not None}):
        rows = keys == key
        found.append((key, long.column("x").to_numpy()[rows], long.column("y").to_numpy()[rows]))
    return found


@pytest.mark.parametrize("standardize", [True, False])
def test_gram_and_rows_forms_agree_on_every_sample_and_test_dataset(standardize: bool) -> None:
    # Same trajectory: with a tolerance above both forms' rounding floors they stop together.
    gram = LineFitter(FitConfig(loss_form="gram", standardize=standardize, max_steps=3000, tolerance=1e-12))
    rows = LineFitter(FitConfig(loss_form="rows", standardize=standardize, max_steps=3000, tolerance=1e-12))
    named = [(f"mixed-{i}", x, y) for i, (x, y) in enumerate(_mixed_datasets())] + _sample_datasets()
    assert len(named) > 80
    for name, x, y in named:
        a, b = gram.fit(x, y), rows.fit(x, y)
        assert a.status == b.status, name
        assert abs(a.steps - b.steps) <= 1, name
        finite = np.isfinite(x) & np.isfinite(y)
        # Values that should be 0 are compared on the data's scale, not relatively.
        size_y = float(np.std(y[finite]) + abs(np.mean(y[finite]))) if finite.sum() else 0.0
        spread_x = float(np.std(x[finite])) if finite.sum() else 0.0
        floors = {
            "w": 1e-11 * size_y / spread_x if spread_x else 0.0,
            "b": 1e-11 * size_y,
            "final_loss": 1e-11 * size_y**2,
        }
        for field, floor in floors.items():
            got, want = getattr(a, field), getattr(b, field)
            assert (got is None) == (want is None), (name, field)
            if got is not None:
                assert got == pytest.approx(want, rel=1e-10, abs=floor), (name, field)


def test_the_fitter_built_ahead_on_a_thread_is_the_one_the_fit_gets() -> None:
    from pipeline.graph.fit_batches import _LazyFitter

    build = _LazyFitter(FitConfig())
    build.start()
    build.start()  # a second start does not build again
    fitter = build.get()  # waits for the thread's build
    assert build.get() is fitter and fitter.trace_count == 1
    x, y = norris()
    result = fitter.fit(x, y)
    assert result.status == Status.OK and (result.w, result.b) == pytest.approx(lstsq(x, y), rel=1e-9)


def test_a_build_that_fails_on_its_thread_fails_again_where_the_fit_runs() -> None:
    from pipeline.graph.fit_batches import _LazyFitter

    build = _LazyFitter(None)  # no settings at all: LineFitter cannot be built
    build.start()
    with pytest.raises(AttributeError, match="dtype"):
        build.get()  # raised here, on the caller's thread, not lost on the builder's
