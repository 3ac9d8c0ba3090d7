"""Accuracy at the edges: NIST certified values, the stop rule, and the whole float64 range."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.fit import FitConfig, LineFitter, Status
from pipeline.reduce.moments import segment_moments
from tests.conftest import (  # REFERENCE: NIST files copied into sample_data/reference
    REFERENCE,
    fitter_for,
    lstsq,
    norris,
)

NORRIS = {
    "w": 1.00211681802045,
    "b": -0.262323073774029,
    "w_stderr": 4.29796848199937e-04,
    "b_stderr": 0.232818234301152,
    "scale": 0.884796396144373,
    "r2": 0.999993745883712,
}
NO_INTERCEPT = {  # NIST StRD: y = B1·x, certified B1, its SD, residual SD, (uncentred) R²
    "NoInt1.dat": (2.07438016528926, 0.165289256198347e-01, 3.56753034006338, 0.999365492298663),
    "NoInt2.dat": (0.727272727272727, 0.420827318078432e-01, 0.369274472937998, 0.993348115299335),
}
FORMS = ("gram", "rows")


def lre(value: float, certified: float) -> float:
    """Log relative error: the number of correct significant digits."""
    return 16.0 if value == certified else -math.log10(abs(value - certified) / abs(certified))


def _no_intercept_data(name: str) -> tuple[np.ndarray, np.ndarray]:
    lines = (REFERENCE / name).read_text().splitlines()[60:]
    values = np.array([[float(v) for v in line.split()] for line in lines if line.strip()])
    return values[:, 1], values[:, 0]


@pytest.fixture(scope="module", params=FORMS)
def fitter(request: pytest.FixtureRequest) -> LineFitter:
    return fitter_for(FitConfig(loss_form=request.param))


def test_norris_to_twelve_digits_at_the_defaults(fitter: LineFitter) -> None:
    x, y = norris()
    result = fitter.fit(x, y)
    assert result.status == Status.OK
    assert lre(result.w, NORRIS["w"]) >= 12 and lre(result.b, NORRIS["b"]) >= 12, result
    for field in ("w_stderr", "b_stderr", "scale", "r2"):
        assert lre(getattr(result, field), NORRIS[field]) >= 10, field


@pytest.mark.parametrize("name", sorted(NO_INTERCEPT))
@pytest.mark.parametrize("form", FORMS)
def test_nist_regressions_through_the_origin(name: str, form: str) -> None:
    b1, sd, residual_sd, r2 = NO_INTERCEPT[name]
    result = fitter_for(FitConfig(intercept=False, loss_form=form)).fit(*_no_intercept_data(name))
    assert result.status == Status.OK and result.b == 0.0 and result.b_stderr is None
    assert lre(result.w, b1) >= 12
    assert lre(result.w_stderr, sd) >= 10
    assert lre(result.scale, residual_sd) >= 10
    assert lre(result.r2, r2) >= 10


def test_the_default_stop_is_the_rounding_floor() -> None:
    # y = 2x + 1: the standardized error shrinks by 0.8 a step, ‖∇L‖ = 2·0.8^k; the
    # floor for float64 is ε·(2 + ‖(a, c)‖) = 3ε at a = 1, reached at k = 161.
    result = fitter_for(FitConfig()).fit(np.array([0.0, 1.0, 2.0]), np.array([1.0, 3.0, 5.0]))
    expected = math.ceil(math.log(3 * np.finfo(float).eps / 2) / math.log(0.8))
    assert result.status == Status.OK and abs(result.steps - expected) <= 1
    assert result.w == pytest.approx(2.0, rel=4e-16) and result.b == pytest.approx(1.0, rel=4e-16)


@pytest.mark.parametrize("form", FORMS)
def test_a_step_too_small_for_the_precision_is_not_ok(form: str) -> None:
    """--no_standardize, η = 1e-13, x ≈ 1e6: once 'ok' with b = 2e-6 where least squares gives ~1."""
    rng = np.random.default_rng(0)
    x = 1e6 + rng.uniform(-10, 10, 200)
    y = 2 * x + 1 + rng.normal(0, 1, 200)
    result = fitter_for(FitConfig(standardize=False, learning_rate=1e-13, loss_form=form)).fit(x, y)
    assert result.status == Status.NOT_CONVERGED and not result.converged
    assert "‖∇L‖" in result.error


@pytest.mark.parametrize("standardize", [True, False])
def test_float32_with_a_tiny_step_is_not_ok(standardize: bool) -> None:
    """float32, x ≈ 1000 ± 1, η = 1e-7: once 'ok' with b = 0.002 where least squares gives 1.29."""
    rng = np.random.default_rng(1)
    x = 1000 + rng.uniform(-1, 1, 200)
    y = 3 * x + 1.29 + rng.normal(0, 0.1, 200)
    result = fitter_for(FitConfig(dtype="float32", learning_rate=1e-7, standardize=standardize)).fit(x, y)
    assert result.status == Status.NOT_CONVERGED
    assert result.error.startswith(("stalled", "max_steps"))


def test_a_warm_start_in_other_units_is_judged_on_the_real_gradient() -> None:
    """Yesterday y in micro-units, today in base units: float32 once said 'ok' with w off by 78 %."""
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 10, 500)
    y = 0.5 * x + 2 + rng.normal(0, 0.1, 500)
    fitter = fitter_for(FitConfig(dtype="float32"))
    yesterday = fitter.fit(x, y * 1e6)
    today = fitter.fit_moments(segment_moments(x, y, np.zeros(1, np.int64)), [(yesterday.w, yesterday.b)])[0]
    w, b = lstsq(x, y)
    assert today.status == Status.OK
    assert today.w == pytest.approx(w, rel=1e-5) and today.b == pytest.approx(b, rel=1e-5)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("magnitude", [1e-310, 1e-300, 3e-164, 1e-161, 1e-100, 1e100, 1e150])
def test_y_anywhere_in_the_float64_range(form: str, magnitude: float) -> None:
    rng = np.random.default_rng(3)
    x = np.arange(50.0)
    y = magnitude * (2 * x + 1 + rng.normal(0, 0.01, 50))
    w, b = lstsq(x, y / magnitude)
    result = fitter_for(FitConfig(loss_form=form)).fit(x, y)
    assert result.status == Status.OK, result
    # subnormal data carries fewer digits: 1e-310 holds about 14 bits less than a normal double
    rel = 1e-9 if magnitude < 2.3e-308 else 1e-12
    assert result.w == pytest.approx(w * magnitude, rel=rel)
    assert result.b == pytest.approx(b * magnitude, rel=100 * rel)
    residual = y / magnitude - (w * x + b)
    assert result.r2 == pytest.approx(1 - np.sum(residual**2) / np.sum((y / magnitude - np.mean(y / magnitude)) ** 2))


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("magnitude", [1e-300, 1e-155, 1e155, 1e300])
def test_x_anywhere_in_the_float64_range(form: str, magnitude: float) -> None:
    rng = np.random.default_rng(4)
    i = np.arange(1, 51, dtype=float)
    y = 2 * i + 1 + rng.normal(0, 0.01, 50)
    w, b = lstsq(i, y)
    result = fitter_for(FitConfig(loss_form=form)).fit(i * magnitude, y)
    assert result.status == Status.OK, result
    assert result.w == pytest.approx(w / magnitude, rel=1e-12)
    assert result.b == pytest.approx(b, rel=1e-10)


@pytest.mark.parametrize("exponent", [6, 10, 12, 15])
def test_both_forms_agree_far_from_zero(exponent: int) -> None:
    """Data at 10ᵉ + i: the row form lost 4 digits of w at 1e15 (8e-4) when it divided before centring."""
    rng = np.random.default_rng(exponent)
    i = np.arange(100.0)
    y = 3 * i + 5 + rng.normal(0, 0.1, 100)
    w, _ = lstsq(i, y)
    for form in FORMS:
        result = fitter_for(FitConfig(loss_form=form)).fit(10.0**exponent + i, y)
        assert result.status == Status.OK
        assert result.w == pytest.approx(w, rel=1e-12), form


@pytest.mark.parametrize("magnitude", [1e200, 1e300])
def test_squares_beyond_float64_fail_with_a_reason(magnitude: float) -> None:
    """The line is fine but its mean squared error (~1e396) is no double: failed, never a wrong number."""
    rng = np.random.default_rng(5)
    x = np.arange(50.0)
    y = magnitude * (2 * x + 1 + rng.normal(0, 0.01, 50))
    for form in FORMS:
        result = fitter_for(FitConfig(loss_form=form)).fit(x, y)
        assert result.status == Status.FAILED and "overflows" in result.error and result.w is None
