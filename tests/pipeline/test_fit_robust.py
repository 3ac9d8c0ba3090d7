"""Weighted, through-origin and Huber fits against statsmodels and scikit-learn (test-only references)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pipeline.fit import FitConfig, Status
from tests.conftest import fitter_for

sm = pytest.importorskip("statsmodels.api")
linear_model = pytest.importorskip("sklearn.linear_model")
EPSILON = 1.35


def _wls(x: np.ndarray, y: np.ndarray, weights: np.ndarray, intercept: bool) -> object:
    design = sm.add_constant(x) if intercept else x[:, None]
    return sm.WLS(y, design, weights=weights).fit()


def _contaminated(seed: int, n: int = 800, share: float = 0.15, intercept: bool = True) -> tuple:
    rng = np.random.default_rng(seed)
    scale = 10 ** rng.uniform(-2, 3)
    x = rng.normal(rng.uniform(-3, 3) * scale, scale, n)
    y = 2.5 * x + (scale if intercept else 0.0) + rng.normal(0, 0.3 * scale, n)
    bad = rng.random(n) < share
    y[bad] += rng.normal(0, 20 * scale, int(bad.sum()))
    return x, y


def _huber_objective(x: np.ndarray, y: np.ndarray, w: float, b: float, sigma: float, c: np.ndarray | None) -> float:
    c = np.ones_like(x) if c is None else c
    z = (y - w * x - b) / sigma
    huber = np.where(np.abs(z) < EPSILON, z * z, 2 * EPSILON * np.abs(z) - EPSILON**2)
    return float(np.sum(c * (sigma + sigma * huber)) / np.sum(c))


# --- weighted least squares ------------------------------------------------------------


@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize("form", ["gram", "rows"])
def test_weighted_least_squares_matches_statsmodels_wls(intercept: bool, form: str) -> None:
    fitter = fitter_for(FitConfig(weights="w", intercept=intercept, loss_form=form))
    rng = np.random.default_rng(7)
    for _ in range(20):
        n = int(rng.integers(5, 2000))
        x = rng.normal(rng.uniform(-10, 10), 10 ** rng.uniform(-2, 2), n)
        y = rng.normal() * x + rng.normal() * 3 * intercept + rng.normal(0, 1, n)
        weights = rng.uniform(0.1, 10, n)
        result = fitter.fit(x, y, weights)
        ref = _wls(x, y, weights, intercept)
        w_ref, b_ref = (ref.params[1], ref.params[0]) if intercept else (ref.params[0], 0.0)
        assert result.status == Status.OK
        assert result.w == pytest.approx(w_ref, rel=1e-9, abs=1e-9)
        assert result.b == pytest.approx(b_ref, rel=1e-9, abs=1e-9)
        assert result.w_stderr == pytest.approx(ref.bse[-1], rel=1e-9)
        if intercept:
            assert result.b_stderr == pytest.approx(ref.bse[0], rel=1e-9)
        else:
            assert result.b == 0.0 and result.b_stderr is None
        assert result.scale == pytest.approx(np.sqrt(ref.scale), rel=1e-9)
        assert result.final_loss == pytest.approx(ref.ssr / np.sum(weights), rel=1e-9)


def test_zero_weights_carry_no_information_and_no_degree_of_freedom() -> None:
    """As in R's lm: a zero-weight row changes nothing, the residual df counts positive weights."""
    rng = np.random.default_rng(8)
    x = rng.normal(0, 1, 60)
    y = 2 * x + 1 + rng.normal(0, 0.5, 60)
    weights = rng.uniform(0.5, 2, 60)
    weights[::4] = 0.0
    fitter = fitter_for(FitConfig(weights="w"))
    result = fitter.fit(x, y, weights)
    keep = weights > 0
    ref = _wls(x[keep], y[keep], weights[keep], True)
    assert result.n_rows == 60 and result.n_dropped == 0
    assert result.w == pytest.approx(ref.params[1], rel=1e-10)
    assert result.w_stderr == pytest.approx(ref.bse[1], rel=1e-10)
    assert result.scale == pytest.approx(np.sqrt(ref.scale), rel=1e-10)


def test_bad_weights_are_dropped_and_counted() -> None:
    x = np.arange(8.0)
    y = 3 * x - 1
    weights = np.array([1.0, np.nan, 2.0, np.inf, -1.0, 1.0, 0.0, 1.0])
    result = fitter_for(FitConfig(weights="w")).fit(x, y, weights)
    assert (result.status, result.n_rows, result.n_dropped) == (Status.OK, 5, 3)
    assert result.w == pytest.approx(3.0, rel=1e-14) and result.b == pytest.approx(-1.0, rel=1e-14)


@pytest.mark.parametrize(
    ("weights", "reason"),
    [
        ([0.0, 0.0, 1.0, 0.0], "at least 2 rows with finite x and y and a positive weight, found 1"),
        ([np.nan, -1.0, 1.0, np.inf], "found 1 (0 with weight 0, 3 dropped"),
    ],
)
def test_too_few_positive_weights_fail_with_the_cause(weights: list, reason: str) -> None:
    result = fitter_for(FitConfig(weights="w")).fit(np.arange(4.0), np.arange(4.0), np.array(weights))
    assert result.status == Status.FAILED and reason in result.error


def test_constant_x_among_positive_weights_fails() -> None:
    x = np.array([1.0, 1.0, 1.0, 5.0])
    result = fitter_for(FitConfig(weights="w")).fit(x, np.arange(4.0), np.array([1.0, 2.0, 1.0, 0.0]))
    assert result.status == Status.FAILED and "x is constant" in result.error and "positive weight" in result.error


# --- through the origin ------------------------------------------------------------------


@pytest.mark.parametrize("form", ["gram", "rows"])
def test_no_intercept_matches_statsmodels_ols(form: str) -> None:
    rng = np.random.default_rng(9)
    x = rng.uniform(1, 100, 300)
    y = 0.7 * x + rng.normal(0, 2, 300)
    result = fitter_for(FitConfig(intercept=False, loss_form=form)).fit(x, y)
    ref = sm.OLS(y, x[:, None]).fit()
    assert result.status == Status.OK and result.b == 0.0
    assert result.w == pytest.approx(ref.params[0], rel=1e-12)
    assert result.w_stderr == pytest.approx(ref.bse[0], rel=1e-10)
    assert result.r2 == pytest.approx(ref.rsquared, rel=1e-10)  # uncentred, as statsmodels without a constant


def test_no_intercept_needs_only_a_nonzero_x() -> None:
    fitter = fitter_for(FitConfig(intercept=False))
    assert fitter.fit(np.full(5, 2.0), np.arange(5.0)).status == Status.OK
    zero = fitter.fit(np.zeros(5), np.arange(5.0))
    assert zero.status == Status.FAILED and "x is 0" in zero.error


# --- Huber ---------------------------------------------------------------------------------


def _scikit_learn_huber(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None, intercept: bool) -> tuple:
    """The scikit-learn HuberRegressor(alpha=0) fit as (w, b, σ).

    The better (lower objective) of its fits on the raw and on standardized data: its
    L-BFGS stops at slightly different places on each.
    """
    fits = []
    for sx, sy in ((1.0, 1.0), (float(np.std(x)), float(np.std(y)))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = linear_model.HuberRegressor(
                epsilon=EPSILON, alpha=0.0, fit_intercept=intercept, max_iter=100_000, tol=1e-15
            ).fit((x / sx)[:, None], y / sy, sample_weight=weights)
        fits.append((ref.coef_[0] * sy / sx, ref.intercept_ * sy, ref.scale_ * sy))
    return min(fits, key=lambda fit: _huber_objective(x, y, *fit, weights))


@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
def test_huber_is_at_least_as_good_as_scikit_learn(intercept: bool, weighted: bool) -> None:
    fitter = fitter_for(FitConfig(loss="huber", intercept=intercept, weights="w" if weighted else None))
    for seed in range(4):
        x, y = _contaminated(seed, intercept=intercept)
        weights = np.random.default_rng(seed).uniform(0.5, 2, x.size) if weighted else None
        result = fitter.fit(x, y, weights) if weighted else fitter.fit(x, y)
        w, b, sigma = _scikit_learn_huber(x, y, weights, intercept)
        assert result.status == Status.OK, result
        assert _huber_objective(x, y, result.w, result.b, result.scale, weights) <= _huber_objective(
            x, y, w, b, sigma, weights
        ) * (1 + 1e-12)
        # within 1e-5·σ: the fitted values at the data's spread, the intercept, the scale
        assert abs(result.w - w) * float(np.std(x)) <= 1e-5 * sigma
        assert abs((result.b + result.w * np.mean(x)) - (b + w * np.mean(x))) <= 1e-5 * sigma
        assert abs(result.scale - sigma) <= 1e-4 * sigma  # the objective is flattest in σ: L-BFGS stops early there
        residual = y - result.w * x - result.b
        assert result.n_outliers == int(np.sum(np.abs(residual) > EPSILON * result.scale))
        assert result.w_stderr is None and result.b_stderr is None


def test_huber_resists_gross_outliers_where_least_squares_does_not() -> None:
    rng = np.random.default_rng(11)
    x = rng.uniform(0, 10, 400)
    y = 2 * x + 1 + rng.normal(0, 0.2, 400)
    y[:20] += 500  # sensor spikes
    huber = fitter_for(FitConfig(loss="huber")).fit(x, y)
    squared = fitter_for(FitConfig()).fit(x, y)
    assert abs(huber.w - 2) < 0.02 and abs(huber.b - 1) < 0.1
    assert abs(squared.b - 1) > 10
    assert huber.n_outliers >= 20
    # the numbers docs/fit.md quotes
    assert (round(squared.w, 3), round(squared.b, 2)) == (1.96, 26.18)
    robust = (round(huber.w, 3), round(huber.b, 4), round(huber.scale, 3), huber.n_outliers)
    assert robust == (2.003, 0.9952, 0.162, 138)


def test_huber_on_an_exact_line_is_the_line_with_zero_scale() -> None:
    result = fitter_for(FitConfig(loss="huber")).fit(np.arange(10.0), 3 * np.arange(10.0) + 2)
    assert result.status == Status.OK and result.scale == 0.0 and result.n_outliers == 0
    assert result.w == pytest.approx(3.0, rel=1e-14) and result.b == pytest.approx(2.0, rel=1e-14)


def test_an_exact_line_never_holds_up_its_batch_mates() -> None:
    x, y = _contaminated(5)
    exact = (np.arange(10.0), 3 * np.arange(10.0) + 2)
    first, second = fitter_for(FitConfig(loss="huber")).fit_rows([exact, (x, y)])
    assert (first.status, first.steps, first.scale) == (Status.OK, 0, 0.0)
    assert second.status == Status.OK and second.steps < 300


def test_huber_warm_start_from_the_answer_takes_few_steps() -> None:
    x, y = _contaminated(3)
    fitter = fitter_for(FitConfig(loss="huber"))
    cold = fitter.fit_rows([(x, y)])[0]
    warm = fitter.fit_rows([(x, y)], [(cold.w, cold.b, cold.scale)])[0]
    assert warm.status == Status.OK and warm.steps < cold.steps / 4
    assert warm.w == pytest.approx(cold.w, rel=1e-9) and warm.scale == pytest.approx(cold.scale, rel=1e-9)


def test_huber_options_are_validated() -> None:
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError, match="huber_epsilon"):
        FitConfig(loss="huber", huber_epsilon=1.0)
    with pytest.raises(ConfigError, match="no Gram form"):
        FitConfig(loss="huber", loss_form="gram")
    with pytest.raises(ConfigError, match="--loss must be"):
        FitConfig(loss="absolute")
    with pytest.raises(ConfigError, match=r"below 1 \(default 0.5"):
        FitConfig(loss="huber", learning_rate=1.0)
    assert FitConfig(loss="huber").loss_form == "rows" and FitConfig().loss_form == "gram"
    # the default step per loss: 0.5 is Huber's Newton step, the squared loss keeps 0.1
    assert FitConfig(loss="huber").learning_rate == 0.5 and FitConfig().learning_rate == 0.1
    assert FitConfig(loss="huber", learning_rate=0.9).learning_rate == 0.9
