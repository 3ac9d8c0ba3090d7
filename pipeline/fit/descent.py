"""The compiled gradient-descent loop: a ``tf.while_loop`` fitting many datasets at once.

This is the only module that imports TensorFlow. It knows nothing about files or Beam.
For each dataset i it minimises a loss Lᵢ(wᵢ, bᵢ) with the textbook update
(w, b) ← (w, b) − η·∇L, the gradient taken by ``tf.GradientTape``. A batch of datasets
is one call: parameters are vectors, the tape differentiates the *sum* of the losses
(whose gradient with respect to wᵢ, bᵢ is dataset i's own gradient), and each dataset
is frozen by a mask the moment it converges, diverges or runs out of steps. A
dataset's steps and numbers are therefore the same whatever its batch-mates are.

Two forms of the loss, the same quadratic:

* ``rows``: Lᵢ = mean over dataset i's rows of (w·x + b − y)², via segment sums over
  the concatenated rows of the batch;
* ``gram``: Lᵢ = qᵢ + cᵢ·(w − βᵢ)² + (w·x̄ᵢ + b − ȳᵢ)², the same loss from the
  dataset's moments (see :mod:`pipeline.reduce.moments`): each step costs O(1), not O(rows).

Both functions have an ``input_signature`` with unknown lengths, so each is traced
once per process however many batches of whatever sizes it fits.
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import numpy as np

# TensorFlow's import eagerly loads Keras (for its SavedModel registry), about 0.8 s of
# every worker's start-up; tapefit never uses Keras. Hide it during the import only
# (TensorFlow catches the ImportError), so a later ``import keras`` works as usual.
_HIDE_KERAS = "keras" not in sys.modules
if _HIDE_KERAS:
    sys.modules["keras"] = None  # type: ignore[assignment]
try:
    import tensorflow as tf
finally:
    if _HIDE_KERAS and sys.modules.get("keras", 0) is None:
        del sys.modules["keras"]

__all__ = ["CONVERGED", "DIVERGED", "MAX_STEPS", "Descent", "DescentOutcome"]

RUNNING, CONVERGED, MAX_STEPS, DIVERGED = 0, 1, 2, 3

# Gradient descent on a quadratic with a step that converges never raises the loss above
# its starting value (every eigen-component shrinks). A loss past twice the start therefore
# proves that some component grows geometrically: the run diverges, so stop it early.
_DIVERGENCE_FACTOR = 2.0


class DescentOutcome(NamedTuple):
    """What the loop ended with, one entry per dataset of the batch.

    Attributes:
        w: Final slopes on the loop's own (possibly standardized) scale.
        b: Final intercepts on that scale.
        steps: Parameter updates applied to each dataset.
        code: ``CONVERGED``, ``MAX_STEPS`` or ``DIVERGED`` per dataset.
        loss: The loss at the final parameters, on the loop's scale.
    """

    w: np.ndarray
    b: np.ndarray
    steps: np.ndarray
    code: np.ndarray
    loss: np.ndarray


def _descend(loss_fn, w0, b0, eta, tol, limit, noise_floor):  # noqa: ANN001, ANN202 (graph code)
    """The masked while-loop shared by both loss forms (called while tracing)."""

    def loss_and_gradient(w, b):  # noqa: ANN001, ANN202
        with tf.GradientTape() as tape:
            tape.watch([w, b])
            loss = loss_fn(w, b)
            total = tf.reduce_sum(loss)  # ∂total/∂wᵢ = ∂Lᵢ/∂wᵢ: datasets do not interact
        # gather's gradient comes as IndexedSlices: densify (a segment sum per dataset)
        dw, db = (tf.convert_to_tensor(g) for g in tape.gradient(total, [w, b]))
        return loss, dw, db, tf.sqrt(dw * dw + db * db)

    start_loss, _, _, start_norm = loss_and_gradient(w0, b0)
    # Converged to machine precision: the gradient has fallen by the dtype's whole precision
    # from where it started, so further steps only shuffle rounding noise (matters for float32).
    tol = tf.maximum(tol, noise_floor * start_norm)
    running = tf.zeros_like(w0, tf.int32) + RUNNING

    def body(step, w, b, code, loss):  # noqa: ANN001, ANN202, ARG001
        loss, dw, db, grad_norm = loss_and_gradient(w, b)
        new_w = w - eta * dw
        new_b = b - eta * db
        diverged = tf.logical_not(tf.math.is_finite(loss) & tf.math.is_finite(grad_norm)) | (
            loss > _DIVERGENCE_FACTOR * start_loss
        )
        # Converged: the gradient is small enough, or the update no longer moves the
        # parameters at this precision (converged to machine precision).
        converged = (grad_norm <= tol) | ((new_w == w) & (new_b == b))
        new_code = tf.where(
            diverged,
            DIVERGED,
            tf.where(converged, CONVERGED, tf.where(step >= limit, MAX_STEPS, RUNNING)),
        )
        was_running = tf.equal(code, RUNNING)
        code = tf.where(was_running, new_code, code)
        move = tf.equal(code, RUNNING)
        return (
            step + tf.cast(move, tf.int64),
            tf.where(move, new_w, w),
            tf.where(move, new_b, b),
            code,
            loss,  # a frozen dataset's loss is recomputed at its frozen parameters: unchanged
        )

    return tf.while_loop(
        lambda step, w, b, code, loss: tf.reduce_any(tf.equal(code, RUNNING)),  # noqa: ARG005
        body,
        (tf.zeros_like(w0, tf.int64), w0, b0, running, start_loss),
    )


class Descent:
    """Gradient descent for batches of datasets, compiled once.

    Build it where fits run (``DoFn.setup()``): constructing it imports TensorFlow.

    Args:
        dtype: ``"float64"`` or ``"float32"``: the loop's precision.
        learning_rate: Step size η.
        tolerance: A dataset has converged once ‖∇Lᵢ‖₂ is at most this.
        max_steps: Most updates per dataset before it stops with ``MAX_STEPS``.
    """

    def __init__(self, dtype: str, learning_rate: float, tolerance: float, max_steps: int) -> None:
        real = tf.as_dtype(dtype)
        vector = tf.TensorSpec([None], real)
        scalar = tf.TensorSpec([], real)
        steps = tf.TensorSpec([], tf.int64)
        noise_floor = 8 * np.finfo(dtype).eps
        self._dtype = np.dtype(dtype)
        self._settings = (
            tf.constant(learning_rate, real),
            tf.constant(tolerance, real),
            tf.constant(max_steps, tf.int64),
        )

        index = tf.TensorSpec([None], tf.int32)

        @tf.function(input_signature=[vector, vector, index, vector, vector, vector, scalar, scalar, steps])
        def rows(x, y, segment, count, w0, b0, eta, tol, limit):  # noqa: ANN001, ANN202 (tensors)
            size = tf.size(count)

            def loss_fn(w, b):  # noqa: ANN001, ANN202
                residual = tf.gather(w, segment) * x + tf.gather(b, segment) - y
                return tf.math.unsorted_segment_sum(tf.square(residual), segment, size) / count

            return _descend(loss_fn, w0, b0, eta, tol, limit, noise_floor)

        @tf.function(input_signature=[vector] * 7 + [scalar, scalar, steps])
        def gram(floor, curvature, slope, mean_x, mean_y, w0, b0, eta, tol, limit):  # noqa: ANN001, ANN202
            def loss_fn(w, b):  # noqa: ANN001, ANN202
                return floor + curvature * tf.square(w - slope) + tf.square(w * mean_x + b - mean_y)

            return _descend(loss_fn, w0, b0, eta, tol, limit, noise_floor)

        self._rows = rows
        self._gram = gram

    @property
    def trace_count(self) -> int:
        """Traces of both compiled functions so far (at most one each)."""
        return self._rows.experimental_get_tracing_count() + self._gram.experimental_get_tracing_count()

    def _start(self, size: int, w0: np.ndarray | None, b0: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        zeros = np.zeros(size, self._dtype)
        return (
            zeros if w0 is None else np.asarray(w0, self._dtype),
            zeros if b0 is None else np.asarray(b0, self._dtype),
        )

    @staticmethod
    def _outcome(result: tuple) -> DescentOutcome:
        steps, w, b, code, loss = (t.numpy() for t in result)
        return DescentOutcome(w.astype(np.float64), b.astype(np.float64), steps, code, loss.astype(np.float64))

    def rows(
        self,
        x: np.ndarray,
        y: np.ndarray,
        starts: np.ndarray,
        w0: np.ndarray | None = None,
        b0: np.ndarray | None = None,
    ) -> DescentOutcome:
        """Descend on the row-wise loss of datasets stored one after another.

        Args:
            x: The concatenated x values of the batch (no NaN).
            y: The concatenated y values.
            starts: Start offset of each dataset in ``x``; each holds at least one row.
            w0: Starting slopes (default zeros).
            b0: Starting intercepts (default zeros).

        Returns:
            One outcome entry per dataset.
        """
        starts = np.asarray(starts, np.int64)
        lengths = np.diff(np.append(starts, len(x)))
        segment = np.repeat(np.arange(starts.size, dtype=np.int32), lengths)
        w0, b0 = self._start(starts.size, w0, b0)
        x, y = np.asarray(x, self._dtype), np.asarray(y, self._dtype)
        return self._outcome(self._rows(x, y, segment, lengths.astype(self._dtype), w0, b0, *self._settings))

    def gram(
        self,
        floor: np.ndarray,
        curvature: np.ndarray,
        slope: np.ndarray,
        mean_x: np.ndarray,
        mean_y: np.ndarray,
        w0: np.ndarray | None = None,
        b0: np.ndarray | None = None,
    ) -> DescentOutcome:
        """Descend on Lᵢ = floorᵢ + curvatureᵢ·(w − slopeᵢ)² + (w·mean_xᵢ + b − mean_yᵢ)².

        With floor = R/n, curvature = Cxx/n, slope = Cxy/Cxx and the means, this is
        exactly the mean squared error of the dataset's rows.

        Returns:
            One outcome entry per dataset.
        """
        w0, b0 = self._start(len(floor), w0, b0)
        inputs = (np.asarray(v, self._dtype) for v in (floor, curvature, slope, mean_x, mean_y))
        return self._outcome(self._gram(*inputs, w0, b0, *self._settings))
