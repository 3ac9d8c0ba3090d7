"""The line fit against independent references: numpy least squares, NIST, hand math."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.config.settings import FitConfig
from pipeline.fit import LineFitter, Status
from tests.conftest import lstsq, norris

NORRIS_W, NORRIS_B = 1.00211681802045, -0.262323073774029
NORRIS_LOSS = 26.6173985294224 / 36


def _close(value: float, reference: float, tolerance: float) -> bool:
    return abs(value - reference) <= tolerance * (1 + abs(reference))


def _random_dataset(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = int(rng.integers(2, 3000))
    scale_x = 10 ** rng.uniform(-3, 5)
    scale_y = 10 ** rng.uniform(-3, 5)
    x = rng.normal(rng.uniform(-5, 5) * scale_x, scale_x, n)
    slope = rng.normal() * scale_y / scale_x
    noise = rng.uniform(0, 2) * scale_y
    return x, slope * x + rng.normal() * scale_y + rng.normal(0, noise, n)


def test_matches_numpy_least_squares_on_many_random_datasets(fitter: LineFitter) -> None:
    rng = np.random.default_rng(20261125)
    for _ in range(150):
        x, y = _random_dataset(rng)
        result = fitter.fit(x, y)
        w, b = lstsq(x, y)
        assert result.status == Status.OK and result.converged
        assert _close(result.w, w, 1e-9), (result, w)
        assert _close(result.b, b, 1e-9), (result, b)
        residual = w * x + b - y
        assert result.final_loss == pytest.approx(np.mean(residual**2), rel=1e-9, abs=1e-300)
        assert result.n_rows == x.size and result.n_dropped == 0


def test_x_far_from_zero_keeps_its_digits(fitter: LineFitter) -> None:
    rng = np.random.default_rng(7)
    for _ in range(10):
        x = 1e6 + rng.uniform(-10, 10, 500)
        y = 2.5 * x - 3.0 + rng.normal(0, 1, 500)
        result = fitter.fit(x, y)
        w, b = lstsq(x, y)
        assert result.status == Status.OK
        assert result.w == pytest.approx(w, rel=1e-6)
        assert result.b == pytest.approx(b, rel=1e-6)


def test_nist_norris_certified_values(fitter: LineFitter) -> None:
    x, y = norris()
    result = fitter.fit(x, y)
    assert result.status == Status.OK
    # Log relative error (correct significant digits) of at least 9.
    assert -math.log10(abs(result.w - NORRIS_W) / abs(NORRIS_W)) >= 9
    assert -math.log10(abs(result.b - NORRIS_B) / abs(NORRIS_B)) >= 9
    assert result.final_loss == pytest.approx(NORRIS_LOSS, rel=1e-9)
    assert result.r2 == pytest.approx(0.999993745883712, rel=1e-9)


def test_hand_computed_line_and_step_count() -> None:
    # y = 2x + 1 exactly: standardized slope a* = r = 1, c* = 0. From (0, 0) the error
    # shrinks by (1 - 2η) = 0.8 a step and ‖∇L‖ = 2·0.8^k, so it drops below 1e-12 at
    # k = ceil(log(5e-13) / log(0.8)) = 127 updates.
    result = LineFitter(FitConfig(tolerance=1e-12)).fit(np.array([0.0, 1.0, 2.0]), np.array([1.0, 3.0, 5.0]))
    expected_steps = math.ceil(math.log(1e-12 / 2) / math.log(0.8))
    assert result.status == Status.OK
    assert abs(result.steps - expected_steps) <= 1
    assert result.w == pytest.approx(2.0, abs=1e-11)
    assert result.b == pytest.approx(1.0, abs=1e-11)
    assert result.final_loss == pytest.approx(0.0, abs=1e-20)
    assert result.r2 == pytest.approx(1.0, abs=1e-12)


def test_compiled_loop_is_traced_once_for_any_length(fitter: LineFitter) -> None:
    rng = np.random.default_rng(1)
    for n in (2, 3, 17, 1000, 5):
        fitter.fit(rng.normal(size=n), rng.normal(size=n))
    assert fitter.trace_count == 1


def test_same_input_gives_bit_identical_results(fitter: LineFitter) -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=999), rng.normal(size=999)
    first, second = fitter.fit(x, y), fitter.fit(x.copy(), y.copy())
    assert (first.w, first.b, first.final_loss, first.steps) == (second.w, second.b, second.final_loss, second.steps)


def test_null_nan_and_inf_rows_are_dropped_and_counted(fitter: LineFitter) -> None:
    x = np.array([0.0, 1.0, np.nan, 2.0, np.inf, 3.0, 4.0])
    y = np.array([1.0, 3.0, 4.0, -np.inf, 9.0, 7.0, 9.0])
    result = fitter.fit(x, y)
    keep = np.isfinite(x) & np.isfinite(y)
    w, b = lstsq(x[keep], y[keep])
    assert (result.status, result.n_rows, result.n_dropped) == (Status.OK, 4, 3)
    assert result.w == pytest.approx(w, rel=1e-10) and result.b == pytest.approx(b, rel=1e-10)


@pytest.mark.parametrize(
    ("x", "y", "reason"),
    [
        ([], [], "no rows"),
        ([1.0], [2.0], "at least 2 rows"),
        ([1.0, np.nan, 3.0], [np.nan, 2.0, np.nan], "found 0"),
        ([5.0, 5.0, 5.0], [1.0, 2.0, 3.0], "x is constant"),
    ],
)
def test_unfittable_datasets_fail_without_numbers(fitter: LineFitter, x: list, y: list, reason: str) -> None:
    result = fitter.fit(np.array(x), np.array(y))
    assert result.status == Status.FAILED and not result.converged
    assert reason in result.error and "\n" not in result.error
    assert (result.w, result.b, result.final_loss, result.r2) == (None, None, None, None)


def test_constant_y_gives_flat_line_and_no_r2(fitter: LineFitter) -> None:
    result = fitter.fit(np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.1, 0.1]))
    assert result.status == Status.OK
    assert (result.w, result.b, result.final_loss, result.r2) == (0.0, 0.1, 0.0, None)


def test_huge_values_are_fitted_right_or_failed_never_wrong(fitter: LineFitter) -> None:
    rng = np.random.default_rng(5)
    for exponent in (100, 150, 154, 200, 300, 307):
        x = rng.uniform(1, 2, 50) * 10.0**exponent
        y = 3.0 * x + rng.normal(0, 1, 50) * 10.0 ** (exponent - 1)
        result = fitter.fit(x, y)
        if result.status == Status.FAILED:
            assert "overflow" in result.error and result.w is None
            continue
        w, b = lstsq(x / 10.0**exponent, y / 10.0**exponent)
        assert result.status == Status.OK and math.isfinite(result.final_loss)
        assert result.w == pytest.approx(w, rel=1e-9)
        assert result.b == pytest.approx(b * 10.0**exponent, rel=1e-6, abs=1e-9 * 10.0**exponent)
    # Squared residuals of ~1e199 overflow: this one must be reported as failed.
    x = np.array([1.0, 2.0, 3.0]) * 1e200
    assert fitter.fit(x, x * np.array([1.0, 1.1, 0.9])).status == Status.FAILED


def test_textbook_loop_without_standardizing() -> None:
    raw = LineFitter(FitConfig(standardize=False, max_steps=5000, tolerance=1e-10))
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, 200)
    y = 0.5 * x - 0.25 + rng.normal(0, 0.1, 200)
    result = raw.fit(x, y)
    w, b = lstsq(x, y)
    assert result.status == Status.OK
    assert result.w == pytest.approx(w, abs=1e-9) and result.b == pytest.approx(b, abs=1e-9)


def test_textbook_loop_diverges_on_large_x_and_reports_no_numbers() -> None:
    raw = LineFitter(FitConfig(standardize=False))
    x = np.linspace(0, 1000, 50)
    result = raw.fit(x, 2 * x + 1)
    assert result.status == Status.DIVERGED and not result.converged
    assert (result.w, result.b, result.final_loss) == (None, None, None)
    assert "learning rate" in result.error and result.steps < 50


def test_standardized_loop_diverges_when_step_too_big() -> None:
    # On standardized data the Hessian is 2·I: η ≥ 1 cannot converge.
    result = LineFitter(FitConfig(learning_rate=1.5)).fit(np.arange(10.0), np.arange(10.0) * 3)
    assert result.status == Status.DIVERGED


def test_max_steps_reached_reports_values_as_not_converged() -> None:
    result = LineFitter(FitConfig(max_steps=10)).fit(np.arange(10.0), np.arange(10.0) * 3 + 1)
    # After 10 updates a = 1 - 0.8^10 of the way: w = 3·(1 - 0.8^10).
    assert result.status == Status.NOT_CONVERGED and not result.converged
    assert result.steps == 10
    assert result.w == pytest.approx(3 * (1 - 0.8**10), rel=1e-12)
    assert result.final_loss > 0


def test_float32_loop_is_close_to_float64() -> None:
    x, y = norris()
    result = LineFitter(FitConfig(dtype="float32")).fit(x, y)
    assert result.status == Status.OK
    assert result.w == pytest.approx(NORRIS_W, rel=1e-5)
    assert result.b == pytest.approx(NORRIS_B, abs=1e-3 * (1 + abs(NORRIS_B)) + 1e-2)


def test_mismatched_lengths_raise(fitter: LineFitter) -> None:
    with pytest.raises(ValueError, match="differ in length"):
        fitter.fit(np.arange(3.0), np.arange(4.0))
