"""The Huber step: its curvature against TensorFlow's own Hessian, its direction against numpy, its damping.

The loop preconditions the Huber step by the inverse curvature (pipeline.fit.losses):
these tests check that curvature independently (second derivatives from nested
GradientTapes), the closed-form 3×3 solve against ``numpy.linalg.solve``, and, on real
fits, that the damped steps never raise the loss and converge in a few steps.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.fit import FitConfig, Status, losses
from pipeline.fit.descent import tf  # TensorFlow as tapefit imports it (without Keras)
from tests.conftest import fitter_for

EPSILON = 1.35


def _rows(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Standardized-looking rows with a fifth of them gross outliers."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    y = 0.6 * x + 0.1 + rng.normal(0, 0.3, n)
    y[: n // 5] += rng.normal(0, 5, n // 5)
    return x, y


def _loss(x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> object:
    """The loop's Huber loss on one dataset in one block, its rows all valid."""
    weights = losses.row_weights(tf.constant(weight[None, :]), tf.constant([x.size], tf.int32), tf.constant(x[None, :]))
    return losses.huber_rows(
        tf.constant(x[None, :]), tf.constant(y[None, :]), weights, tf.constant([0], tf.int32),
        tf.constant([weight.sum()]), tf.constant(EPSILON, tf.float64),
    )  # fmt: skip


def _tape_hessian(x: np.ndarray, y: np.ndarray, weight: np.ndarray, theta: list[float]) -> np.ndarray:
    """∂²L/∂θ² of the loop's own Huber loss, from nested GradientTapes (one dataset, one block)."""
    loss_fn = _loss(x, y, weight)
    params = tf.Variable(theta, dtype=tf.float64)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            loss = loss_fn(params[0:1], params[1:2], params[2:3])[0]
        grad = inner.gradient(loss, params)
    return outer.jacobian(grad, params).numpy()


def _curvature(x: np.ndarray, y: np.ndarray, weight: np.ndarray, theta: list[float]) -> list[np.ndarray]:
    loss_fn = _loss(x, y, weight)
    return [v.numpy() for v in loss_fn.curvature(*(tf.constant([t], tf.float64) for t in theta))]


def _matrix(entries: list[np.ndarray]) -> np.ndarray:
    xx, x1, xz, one, z1, zz = (float(v[0]) for v in entries)
    return np.array([[xx, x1, xz], [x1, one, z1], [xz, z1, zz]])


@pytest.mark.parametrize("weighted", [False, True])
def test_the_curvature_is_the_hessian_of_the_loss(weighted: bool) -> None:
    x, y = _rows(1)
    weight = np.random.default_rng(2).uniform(0.2, 3, x.size) if weighted else np.ones_like(x)
    theta = [0.5, 0.05, 0.4]  # σ small enough that some rows lie outside the band
    m = _matrix(_curvature(x, y, weight, theta))
    inside = np.abs((y - theta[0] * x - theta[1]) / theta[2]) < EPSILON
    assert 0.3 < inside.mean() < 0.95  # both kinds of rows take part
    np.testing.assert_allclose((2 / theta[2]) * m, _tape_hessian(x, y, weight, theta), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("intercept", [True, False])
def test_the_direction_solves_the_damped_newton_system(intercept: bool) -> None:
    x, y = _rows(3)
    entries = _curvature(x, y, np.ones_like(x), [0.5, 0.05, 0.4])
    grads = [np.array([0.3]), np.array([-0.7]), np.array([0.2])]
    sigma, damping = 0.4, 1e-3
    direction = losses.newton_direction(
        [tf.constant(v) for v in entries], [tf.constant(g) for g in grads], tf.constant([sigma], tf.float64),
        tf.constant([damping], tf.float64), tf.constant([1.0 if intercept else 0.0], tf.float64),
    )  # fmt: skip
    m = _matrix(entries) + damping * np.eye(3)
    g = np.array([float(v[0]) for v in grads])
    if intercept:
        expected = sigma * np.linalg.solve(m, g)
    else:  # c is fixed: the (a, σ) system alone; c's component is σ·g_c/(1 + μ) (masked by the loop)
        keep = [0, 2]
        expected = np.zeros(3)
        expected[keep] = sigma * np.linalg.solve(m[np.ix_(keep, keep)], g[keep])
        expected[1] = sigma * g[1] / (1 + damping)
    np.testing.assert_allclose([float(d.numpy()[0]) for d in direction], expected, rtol=1e-12)


def _trials() -> list[tuple[np.ndarray, np.ndarray]]:
    """Small contaminated datasets whose Newton steps overshoot (the damping retries some of them)."""
    cases = []
    for seed in (3, 12, 21):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(8, 200))
        x = rng.uniform(-5, 5, n)
        y = 2 * x + 3 + rng.standard_normal(n) * rng.uniform(0.01, 2)
        m = int(n * rng.uniform(0, 0.45))
        y[:m] += rng.uniform(-1, 1) * rng.uniform(1, 1000, m)
        if seed % 3 == 0:
            x[:m] *= 10  # outliers with leverage
        cases.append((x, y))
    return cases


def test_damped_steps_never_raise_the_loss_and_converge() -> None:
    cases = _trials()
    final = fitter_for(FitConfig(loss="huber")).fit_rows(cases)
    assert all(r.status == Status.OK for r in final), final
    assert max(r.steps for r in final) <= 20
    # the loop's state after k steps, k = 1 … the last: each step is accepted or retried
    states = [fitter_for(FitConfig(loss="huber", max_steps=k)).fit_rows(cases) for k in range(1, 13)]
    retried = 0
    for i, result in enumerate(final):
        path = [s[i] for s in states[: result.steps - 1]] + [result]  # k = 1, 2, …, then the end
        for before, after in zip(path, path[1:], strict=False):
            assert after.final_loss <= before.final_loss * (1 + 1e-13)
            retried += (after.w, after.b, after.scale) == (before.w, before.b, before.scale)
    assert retried >= 2  # some Newton steps overshot and were damped, as these datasets are chosen to


def test_clean_data_converges_in_a_few_newton_steps() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-5, 5, 50_000)
    y = 2 * x + 3 + 0.5 * rng.standard_normal(x.size)
    clean = fitter_for(FitConfig(loss="huber")).fit(x, y)
    y[:5000] += rng.uniform(20, 100, 5000)
    spiked = fitter_for(FitConfig(loss="huber")).fit(x, y)
    assert clean.status == spiked.status == Status.OK
    # fixed-step descent (before the Newton preconditioner) took 125 and 163 steps here
    assert clean.steps <= 6 and spiked.steps <= 10
    assert abs(spiked.w - 2) < 0.01 and abs(spiked.b - 3) < 0.1


def test_inliers_exactly_on_a_line_give_that_line() -> None:
    # σ has no positive minimum here: the steps shrink it to the residuals' rounding
    x = np.arange(50.0)
    y = 2 * x + 1
    y[:10] += 100
    result = fitter_for(FitConfig(loss="huber")).fit(x, y)
    assert result.status == Status.OK, result
    assert result.w == pytest.approx(2.0, rel=1e-12) and result.b == pytest.approx(1.0, abs=1e-10)
    assert 0 < result.scale < 1e-12 and result.n_outliers >= 10
