"""The compiled gradient-descent loop: one ``tf.function`` around a ``tf.while_loop``.

This is the only module that imports TensorFlow. It knows nothing about datasets,
files or Beam: it minimises L(w, b) = mean((w·x + b − y)²) from (0, 0) with the
textbook update (w, b) ← (w, b) − η·∇L, the gradient taken by ``tf.GradientTape``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import tensorflow as tf

__all__ = ["CONVERGED", "DIVERGED", "MAX_STEPS", "Descent", "DescentOutcome", "build_descent"]

RUNNING, CONVERGED, MAX_STEPS, DIVERGED = 0, 1, 2, 3

# Gradient descent on a quadratic with a step that converges never raises the loss above
# its starting value (every eigen-component shrinks). A loss past twice the start therefore
# proves that some component grows geometrically: the run diverges, so stop it early.
_DIVERGENCE_FACTOR = 2.0


class DescentOutcome(NamedTuple):
    """What the loop ended with.

    Attributes:
        w: Final slope on the loop's own (possibly standardized) scale.
        b: Final intercept on that scale.
        steps: Number of parameter updates applied.
        code: ``CONVERGED``, ``MAX_STEPS`` or ``DIVERGED``.
        loss: The loss at the final parameters on the loop's scale.
    """

    w: float
    b: float
    steps: int
    code: int
    loss: float


Descent = Callable[[np.ndarray, np.ndarray], DescentOutcome]


def build_descent(dtype: str, learning_rate: float, tolerance: float, max_steps: int) -> Descent:
    """Trace the gradient-descent loop once and return a function that runs it.

    The returned function accepts vectors of any length (the ``input_signature`` has an
    unknown length), so it is traced exactly once however many datasets it fits.

    Args:
        dtype: ``"float64"`` or ``"float32"``: the loop's precision.
        learning_rate: Step size η.
        tolerance: Converged once ‖∇L‖₂ is at most this.
        max_steps: Most updates before stopping with ``MAX_STEPS``.

    Returns:
        ``descend(x, y) -> DescentOutcome`` for numpy vectors of equal length (≥ 1).
    """
    real = tf.as_dtype(dtype)
    vector = tf.TensorSpec([None], real)
    scalar = tf.TensorSpec([], real)

    # Converged to machine precision: the gradient has fallen by the dtype's whole precision
    # from where it started, so further steps only shuffle rounding noise (matters for float32).
    noise_floor = 8 * np.finfo(dtype).eps

    @tf.function(input_signature=[vector, vector, scalar, scalar, tf.TensorSpec([], tf.int64)])
    def descend(x, y, eta, tol, limit):  # noqa: ANN001, ANN202 (tensors)
        def loss_and_gradient(w, b):  # noqa: ANN001, ANN202
            with tf.GradientTape() as tape:
                tape.watch([w, b])
                loss = tf.reduce_mean(tf.square(w * x + b - y))
            dw, db = tape.gradient(loss, [w, b])
            return loss, dw, db, tf.sqrt(dw * dw + db * db)

        zero = tf.zeros([], real)
        start_loss, _, _, start_norm = loss_and_gradient(zero, zero)
        tol = tf.maximum(tol, noise_floor * start_norm)

        def body(step, w, b, code, loss):  # noqa: ANN001, ANN202, ARG001
            loss, dw, db, grad_norm = loss_and_gradient(w, b)
            new_w = w - eta * dw
            new_b = b - eta * db
            diverged = tf.logical_or(
                tf.logical_not(tf.math.is_finite(loss) & tf.math.is_finite(grad_norm)),
                loss > _DIVERGENCE_FACTOR * start_loss,
            )
            # Converged: the gradient is small enough, or the update no longer moves the
            # parameters at this precision (converged to machine precision).
            converged = (grad_norm <= tol) | ((new_w == w) & (new_b == b))
            code = tf.where(
                diverged,
                DIVERGED,
                tf.where(converged, CONVERGED, tf.where(step >= limit, MAX_STEPS, RUNNING)),
            )
            move = tf.equal(code, RUNNING)
            return (
                step + tf.cast(move, tf.int64),
                tf.where(move, new_w, w),
                tf.where(move, new_b, b),
                code,
                loss,
            )

        return tf.while_loop(
            lambda step, w, b, code, loss: tf.equal(code, RUNNING),  # noqa: ARG005
            body,
            (tf.zeros([], tf.int64), zero, zero, tf.constant(RUNNING), start_loss),
        )

    eta = tf.constant(learning_rate, real)
    tol = tf.constant(tolerance, real)
    limit = tf.constant(max_steps, tf.int64)
    numpy_dtype = np.dtype(dtype)

    def run(x: np.ndarray, y: np.ndarray) -> DescentOutcome:
        steps, w, b, code, loss = descend(np.asarray(x, numpy_dtype), np.asarray(y, numpy_dtype), eta, tol, limit)
        return DescentOutcome(float(w), float(b), int(steps), int(code), float(loss))

    run.trace_count = descend.experimental_get_tracing_count  # for tests: traced once
    return run
