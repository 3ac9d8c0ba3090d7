"""The compiled gradient-descent loop: one ``tf.while_loop`` fitting many datasets at once.

With :mod:`pipeline.fit.losses` the only modules that import TensorFlow; nothing here
knows about files or Beam. For each dataset i the loop minimises a loss Lᵢ(θᵢ) with
the update θ ← θ − η·πᵢ·∇L, the gradient taken by ``tf.GradientTape`` (πᵢ = 1 for the
squared loss; for Huber πᵢ = σᵢ, which keeps the step stable as σ shrinks, see
:mod:`pipeline.fit.losses`). A batch of datasets is one call: parameters are vectors,
the tape differentiates the *sum* of the losses (whose gradient with respect to θᵢ is
dataset i's own), and each dataset is frozen by a mask the moment it converges,
diverges, stalls or runs out of steps, so its steps and numbers never depend on its
batch-mates.

When a dataset stops (all measured in standardized coordinates, where the loss of
the zero line is 1; see docs/fit.md):

* ``CONVERGED``: ‖∇L‖₂ ≤ max(tolerance, F), with F the rounding floor of the loop's
  dtype, F = ε·((2 + ‖θ‖)·κ + noise): κ = 1 (squared) or 1/σ (Huber), and noise =
  2·√n·T for the row form (T bounds a row's gradient term) — or the update no longer
  changes any parameter (a fixed point at this precision) with ‖∇L‖₂ ≤ max(tolerance, 64·F);
* ``STALLED``: the update no longer changes the parameters while the gradient is above
  that: the step is too small for this precision (not converged);
* ``DIVERGED``: the loss is not finite or has grown past twice its start;
* ``MAX_STEPS``: ``max_steps`` updates without any of the above.

Every compiled function has an ``input_signature`` with unknown lengths, so each is
traced once per process however many batches of whatever sizes it fits. The row form
is compiled with XLA (``jit_compile=True``), which fuses a step into a few passes over
the rows; its rows travel as a matrix of fixed-width blocks (:data:`BLOCK` rows, each
dataset's last block padded, masked by each block's count of valid rows; without
weights no weight matrix at all), so every reduction is dense, a
dataset's sums never depend on its batch-mates, and XLA sees only a few shapes: the
block and dataset counts are rounded up to one of four sizes per octave (padding
datasets have no rows and stop at once).
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

from pipeline.fit import losses  # noqa: E402 (after TensorFlow, imported above without Keras)
from pipeline.fit.codes import CONVERGED, DIVERGED, MAX_STEPS, RUNNING, STALLED  # noqa: E402
from pipeline.fit.frame import Frame  # noqa: E402

__all__ = ["BLOCK", "Descent", "DescentOutcome"]

BLOCK = 128  # rows per block of the row form: as fast as wider ones, little padding for small datasets

# Gradient descent with a step that converges never raises the loss above its start (for
# the squared loss every eigen-component shrinks; for Huber the preconditioned step stays
# below 2/curvature). A loss past twice the start therefore proves divergence: stop early.
_DIVERGENCE_FACTOR = 2.0
# Huber's Levenberg–Marquardt damping μ: its floor (M's entries are O(1) on standardized
# rows; this only keeps a singular M invertible), its factor after a failed or a
# successful step, and its least value after a failure, relative to M's mean diagonal
# (climbing there from the floor would take ten failures). On contaminated test data
# (40 datasets) these need 384 passes in all, against 450 with 1e-6 for the last.
_DAMPING_MIN = 1e-12
_DAMPING_FACTOR = 16.0
_DAMPING_JUMP = 1e-2
# A fixed point of the update counts as converged when ‖∇L‖ is within this many floors.
_FIXED_POINT_SLACK = 8.0


class DescentOutcome(NamedTuple):
    """What the loop ended with, one entry per dataset of the batch.

    Attributes:
        params: Final parameters on the loop's own scale: (θ₁, θ₂) or (a, c, σ) for Huber.
        steps: Parameter updates applied to each dataset.
        code: ``CONVERGED``, ``MAX_STEPS``, ``DIVERGED`` or ``STALLED`` per dataset.
        loss: The loss at the final parameters, on the loop's scale.
        gradient: ‖∇L‖₂ at the final parameters, standardized coordinates.
        floor: The rounding floor F at the final parameters.
    """

    params: tuple[np.ndarray, ...]
    steps: np.ndarray
    code: np.ndarray
    loss: np.ndarray
    gradient: np.ndarray
    floor: np.ndarray


def _padded(count: int) -> int:
    """``count`` rounded up to one of four sizes per octave (at least 8): few shapes for XLA."""
    if count <= 8:
        return 8
    step = 1 << max(count.bit_length() - 3, 0)
    return -(-count // step) * step


def _evaluator(loss_fn, frame, kind, epsilon, real):  # noqa: ANN001, ANN202 (graph code)
    """θ ↦ (loss, ∇L, ‖∇L‖₂ standardized, rounding floor F) per dataset (called while tracing)."""
    ga, gb, gc, pa, pb, pw, free_b, rows, lscale = frame
    machine = tf.constant(np.finfo(real.as_numpy_dtype).eps, real)
    two = tf.constant(2.0, real)

    def evaluate(theta):  # noqa: ANN001, ANN202
        with tf.GradientTape() as tape:
            tape.watch(theta)
            loss = loss_fn(*theta)
            total = tf.reduce_sum(loss)  # ∂total/∂θᵢ = ∂Lᵢ/∂θᵢ: datasets do not interact
        # gather's gradient comes as IndexedSlices: densify (a segment sum per dataset)
        grads = [tf.convert_to_tensor(g) for g in tape.gradient(total, theta)]
        std_a = ga * grads[0] + gb * grads[1] * free_b
        std_c = gc * grads[1] * free_b
        norm2 = std_a * std_a + std_c * std_c
        size = tf.square(pa * theta[0]) + tf.square(pb * tf.abs(theta[1]) + pw * tf.abs(theta[0]))
        if kind == "huber":
            norm2 += tf.square(grads[2])
            size += tf.square(theta[2])
        curvature, term = losses.floor_terms(kind, theta, loss * lscale, epsilon)
        noise = two * tf.sqrt(rows) * term
        floor = machine * ((two + tf.sqrt(size)) * curvature + noise)
        return loss, grads, tf.sqrt(norm2), floor

    return evaluate


def _descend(loss_fn, params, frame, settings, kind):  # noqa: ANN001, ANN202 (graph code)
    """The masked while-loop of the squared loss, θ ← θ − η·∇L (called while tracing)."""
    eta, tol, limit, epsilon = settings
    free_b = frame.free_b
    real = params[0].dtype
    evaluate = _evaluator(loss_fn, frame, kind, epsilon, real)
    start_loss, _, _, _ = evaluate(params)
    running = tf.zeros_like(params[0], tf.int32) + RUNNING
    slack = tf.constant(_FIXED_POINT_SLACK, real)

    def body(step, theta, code, loss, norm, floor):  # noqa: ANN001, ANN202, ARG001
        loss, grads, norm, floor = evaluate(list(theta))
        masks = [tf.ones_like(free_b), free_b]
        new = [t - eta * g * m for t, g, m in zip(theta, grads, masks, strict=True)]
        finite = tf.math.is_finite(loss) & tf.math.is_finite(norm)
        diverged = tf.logical_not(finite) | (loss > _DIVERGENCE_FACTOR * start_loss)
        fixed = tf.reduce_all(tf.stack([tf.equal(n, t) for n, t in zip(new, theta, strict=True)]), axis=0)
        converged = (norm <= tf.maximum(tol, floor)) | (fixed & (norm <= tf.maximum(tol, slack * floor)))
        new_code = tf.where(
            diverged,
            DIVERGED,
            tf.where(converged, CONVERGED, tf.where(fixed, STALLED, tf.where(step >= limit, MAX_STEPS, RUNNING))),
        )
        code = tf.where(tf.equal(code, RUNNING), new_code, code)
        move = tf.equal(code, RUNNING)
        return (
            step + tf.cast(move, tf.int64),
            [tf.where(move, n, t) for n, t in zip(new, theta, strict=True)],
            code,
            loss,  # a frozen dataset's loss is recomputed at its frozen parameters: unchanged
            norm,
            floor,
        )

    zeros = tf.zeros_like(params[0])
    return tf.while_loop(
        lambda step, theta, code, loss, norm, floor: tf.reduce_any(tf.equal(code, RUNNING)),  # noqa: ARG005
        body,
        (tf.zeros_like(params[0], tf.int64), list(params), running, start_loss, zeros, zeros),
    )


def _descend_newton(loss_fn, params, frame, settings):  # noqa: ANN001, ANN202, PLR0915 (graph code)
    """The Huber loop: θ ← θ − η·σ·(M + μ·I)⁻¹·∇L, damped where it fails (called while tracing).

    Each pass evaluates the loss, its gradient and its curvature M at a trial point. A
    trial whose loss is no higher than the last accepted point's (within the loss's own
    rounding) is accepted: the stop rules are checked there, and μ shrinks (by
    :data:`_DAMPING_FACTOR`, to :data:`_DAMPING_MIN`), so steps become Newton steps.
    Otherwise the step from the accepted point is retried with μ raised by that factor
    (at least to :data:`_DAMPING_JUMP` times M's mean diagonal):
    shorter and closer to the gradient's direction, as where the band changes between
    steps a Newton step can overshoot. So the loss never rises. A step lowers σ by at
    most 90 % (σ stays positive). Every pass counts as a step; the outcome is the last
    accepted point.
    """
    eta, tol, limit, epsilon = settings
    free_b = frame.free_b
    real = params[0].dtype
    evaluate = _evaluator(loss_fn, frame, "huber", epsilon, real)
    machine = tf.constant(np.finfo(real.as_numpy_dtype).eps, real)
    # the rounding of a loss summed over n rows, relative: an "increase" below it is noise
    noise = machine * (4.0 + 2.0 * tf.sqrt(frame.rows))
    slack = tf.constant(_FIXED_POINT_SLACK, real)
    masks = [tf.ones_like(free_b), free_b, tf.ones_like(free_b)]
    drop = tf.constant(0.9, real)
    factor = tf.constant(_DAMPING_FACTOR, real)
    least = tf.constant(_DAMPING_MIN, real)
    jump = tf.constant(_DAMPING_JUMP, real)

    def propose(theta, direction):  # noqa: ANN001, ANN202
        fall = eta * direction[2]  # the whole step shortened so that σ falls by at most 90 %
        t = tf.where(fall > drop * theta[2], drop * theta[2] / fall, tf.ones_like(fall))
        return [p - eta * t * d * m for p, d, m in zip(theta, direction, masks, strict=True)]

    def unchanged(new, theta):  # noqa: ANN001, ANN202
        return tf.reduce_all(tf.stack([tf.equal(n, p) for n, p in zip(new, theta, strict=True)]), axis=0)

    def body(step, trial, code, base, lbase, nbase, fbase, gbase, cbase, damping):  # noqa: ANN001, ANN202, PLR0913
        loss, grads, norm, floor = evaluate(list(trial))
        curvature = loss_fn.curvature(*trial)
        finite = tf.math.is_finite(loss) & tf.math.is_finite(norm)
        accept = finite & (loss <= lbase + noise * tf.abs(lbase))  # lbase is +inf before the first point

        def pick(new, old):  # noqa: ANN001, ANN202
            return [tf.where(accept, n, o) for n, o in zip(new, old, strict=True)]

        base, gbase, cbase = pick(trial, base), pick(grads, gbase), pick(curvature, cbase)
        lbase, nbase, fbase = pick([loss, norm, floor], [lbase, nbase, fbase])
        scale = (cbase[0] + cbase[3] + cbase[5]) / 3.0  # M's mean diagonal
        damping = tf.where(accept, tf.maximum(damping / factor, least), tf.maximum(damping * factor, jump * scale))
        new = propose(base, losses.newton_direction(cbase, gbase, base[2], damping, free_b))
        fixed = unchanged(new, base)
        converged = (accept & (nbase <= tf.maximum(tol, fbase))) | (fixed & (nbase <= tf.maximum(tol, slack * fbase)))
        diverged = tf.logical_not(tf.math.is_finite(lbase))  # not even the start is finite
        new_code = tf.where(
            diverged,
            DIVERGED,
            tf.where(converged, CONVERGED, tf.where(fixed, STALLED, tf.where(step >= limit, MAX_STEPS, RUNNING))),
        )
        code = tf.where(tf.equal(code, RUNNING), new_code, code)
        move = tf.equal(code, RUNNING)
        return (
            step + tf.cast(move, tf.int64),
            [tf.where(move, n, p) for n, p in zip(new, trial, strict=True)],
            code,
            base,  # a frozen dataset's accepted point is re-accepted at its own loss: unchanged
            lbase,
            nbase,
            fbase,
            gbase,
            cbase,
            damping,
        )

    zeros = tf.zeros_like(params[0])
    state = (
        tf.zeros_like(params[0], tf.int64),
        list(params),
        tf.zeros_like(params[0], tf.int32) + RUNNING,
        list(params),
        zeros + tf.constant(np.inf, real),
        zeros,
        zeros,
        [zeros] * 3,
        [zeros] * 6,
        zeros + least,
    )
    step, _, code, base, loss, norm, floor, *_ = tf.while_loop(
        lambda step, trial, code, *rest: tf.reduce_any(tf.equal(code, RUNNING)),  # noqa: ARG005
        body,
        state,
    )
    return step, base, code, loss, norm, floor


class Descent:
    """Gradient descent for batches of datasets, compiled once per loss.

    Build it where fits run (``DoFn.setup()``): constructing it imports TensorFlow.

    Args:
        dtype: ``"float64"`` or ``"float32"``: the loop's precision.
        learning_rate: Step size η.
        tolerance: A dataset has converged once ‖∇Lᵢ‖₂ (standardized) is at most
            max(tolerance, its rounding floor).
        max_steps: Most updates per dataset before it stops with ``MAX_STEPS``.
        huber_epsilon: Huber's ε, for the Huber loss.
    """

    def __init__(
        self, dtype: str, learning_rate: float, tolerance: float, max_steps: int, huber_epsilon: float = 1.35
    ) -> None:
        real = tf.as_dtype(dtype)
        vector = tf.TensorSpec([None], real)
        steps = tf.TensorSpec([], tf.int64)
        index = tf.TensorSpec([None], tf.int32)
        scalar = tf.TensorSpec([], real)
        frame = [vector] * len(Frame._fields)
        self._dtype = np.dtype(dtype)
        self._settings = (
            tf.constant(learning_rate, real),
            tf.constant(tolerance, real),
            tf.constant(max_steps, tf.int64),
            tf.constant(huber_epsilon, real),
        )
        settings = [scalar, scalar, steps, scalar]

        @tf.function(input_signature=[vector] * 5 + [vector] * 2 + frame + settings, autograph=False)
        def squared_gram(floor, curvature, slope, mean_x, mean_y, w0, b0, *rest):  # noqa: ANN001, ANN002, ANN202
            frame, settings = rest[: len(Frame._fields)], rest[len(Frame._fields) :]
            quadratic = losses.squared_gram(floor, curvature, slope, mean_x, mean_y)
            return _descend(quadratic, [w0, b0], Frame(*frame), settings, "squared_gram")

        matrix = tf.TensorSpec([None, None], real)
        rows = [matrix, matrix, matrix, index, index, vector]

        @tf.function(input_signature=rows + [vector] * 2 + frame + settings, jit_compile=True, autograph=False)
        def squared_rows(x, y, weight, valid, segment, total, w0, b0, *rest):  # noqa: ANN001, ANN002, ANN202
            frame, settings = rest[: len(Frame._fields)], rest[len(Frame._fields) :]
            loss = losses.squared_rows(x, y, losses.row_weights(weight, valid, x), segment, total)
            return _descend(loss, [w0, b0], Frame(*frame), settings, "squared_rows")

        @tf.function(input_signature=rows + [vector] * 3 + frame + settings, jit_compile=True, autograph=False)
        def huber_rows(x, y, weight, valid, segment, total, a0, c0, s0, *rest):  # noqa: ANN001, ANN002, ANN202
            frame, settings = rest[: len(Frame._fields)], rest[len(Frame._fields) :]
            loss = losses.huber_rows(x, y, losses.row_weights(weight, valid, x), segment, total, settings[3])
            return _descend_newton(loss, [a0, c0, s0], Frame(*frame), settings)

        self._functions = {"squared_gram": squared_gram, "squared_rows": squared_rows, "huber": huber_rows}

    @property
    def trace_count(self) -> int:
        """Traces of all compiled functions so far (at most one each)."""
        return sum(f.experimental_get_tracing_count() for f in self._functions.values())

    def _cast(self, values: object) -> np.ndarray:
        return np.asarray(values, self._dtype)

    def _run(self, kind: str, data: tuple, starts: tuple, frame: Frame, size: int | None = None) -> DescentOutcome:
        """Run one compiled loop; keep the first ``size`` datasets (the rest pad the batch)."""
        result = self._functions[kind](*data, *map(self._cast, starts), *map(self._cast, frame), *self._settings)
        keep = slice(0, size)
        steps, params, code, loss, norm, floor = result
        return DescentOutcome(
            tuple(p.numpy()[keep].astype(np.float64) for p in params),
            steps.numpy()[keep],
            code.numpy()[keep],
            loss.numpy()[keep].astype(np.float64),
            norm.numpy()[keep].astype(np.float64),
            floor.numpy()[keep].astype(np.float64),
        )

    def squared_gram(self, quadratic: tuple, starts: tuple, frame: Frame) -> DescentOutcome:
        """Descend on Lᵢ = floorᵢ + curvatureᵢ·(θ₁ − slopeᵢ)² + (θ₁·mean_xᵢ + θ₂ − mean_yᵢ)².

        With floor = R/n, curvature = Cxx/n, slope = Cxy/Cxx and the means this is exactly
        the mean squared error of the dataset's rows (standardized: floor = 1 − r²,
        curvature 1, slope r, means 0).

        Args:
            quadratic: ``(floor, curvature, slope, mean_x, mean_y)`` vectors.
            starts: ``(θ₁, θ₂)`` starting vectors.
            frame: The per-dataset map to standardized coordinates.

        Returns:
            One outcome entry per dataset.
        """
        return self._run("squared_gram", tuple(map(self._cast, quadratic)), starts, frame)

    def _rows_data(self, x: np.ndarray, y: np.ndarray, weight: np.ndarray | None, starts: np.ndarray) -> tuple:
        """The rows as block matrices: x, y, the weights, each block's valid rows and dataset, each dataset's weight.

        Without weights (``None``) the weight matrix is a single 1 (broadcast): the loop
        then reads only x and y, a third less memory a step, and masks the padding by
        each block's count of valid rows.
        """
        starts = np.asarray(starts, np.int64)
        lengths = np.diff(np.append(starts, len(x)))
        blocks = -(-lengths // BLOCK)
        first = np.cumsum(np.append(0, blocks[:-1]))
        datasets = _padded(starts.size + 1)  # at least one padding dataset, owner of the padding blocks
        count = _padded(int(blocks.sum()))
        owner = np.full(count, starts.size, np.int32)
        owner[: blocks.sum()] = np.repeat(np.arange(starts.size, dtype=np.int32), blocks)
        valid = np.zeros(count, np.int32)  # padding blocks hold no rows
        valid[: blocks.sum()] = BLOCK
        valid[first + blocks - 1] = lengths - (blocks - 1) * BLOCK  # each dataset's last block
        position = np.repeat(first * BLOCK - starts, lengths) + np.arange(len(x))
        matrices = []
        for values in (x, y) if weight is None else (x, y, weight):
            flat = np.zeros(count * BLOCK, self._dtype)
            flat[position] = values
            matrices.append(flat.reshape(count, BLOCK))
        if weight is None:
            matrices.append(np.ones((1, 1), self._dtype))
        total = np.ones(datasets)
        if starts.size:
            total[: starts.size] = lengths if weight is None else np.add.reduceat(weight, starts)
        return (*matrices, valid, owner, self._cast(total))

    @staticmethod
    def _pad_datasets(size: int, begin: tuple, frame: Frame) -> tuple[tuple, Frame]:
        """Starts and frame extended with padding datasets (identity frame, σ = 1)."""
        extra = _padded(size + 1) - size
        filler = Frame.standardized(extra, intercept=False)
        frame = Frame(*(np.concatenate([np.asarray(f, np.float64), g]) for f, g in zip(frame, filler, strict=True)))
        fills = (0.0, 0.0, 1.0)[: len(begin)]
        grown = tuple(
            np.concatenate([np.asarray(v, np.float64), np.full(extra, fill)])
            for v, fill in zip(begin, fills, strict=True)
        )
        return grown, frame

    def squared_rows(
        self, x: np.ndarray, y: np.ndarray, weight: np.ndarray | None, starts: np.ndarray, begin: tuple, frame: Frame
    ) -> DescentOutcome:
        """Descend on the row-wise weighted mean squared error of datasets stored one after another.

        Args:
            x: The concatenated x values of the batch, on the loop's scale (no NaN).
            y: The concatenated y values.
            weight: Row weights (positive), or ``None``: unweighted.
            starts: Start offset of each dataset; each holds at least one row.
            begin: ``(θ₁, θ₂)`` starting vectors.
            frame: The per-dataset map to standardized coordinates.

        Returns:
            One outcome entry per dataset.
        """
        size = len(starts)
        padded = self._pad_datasets(size, begin, frame)
        return self._run("squared_rows", self._rows_data(x, y, weight, starts), *padded, size)

    def huber(
        self, x: np.ndarray, y: np.ndarray, weight: np.ndarray | None, starts: np.ndarray, begin: tuple, frame: Frame
    ) -> DescentOutcome:
        """Descend on Owen's concomitant-scale Huber objective over (a, c, σ), rows standardized.

        Args:
            x: The concatenated standardized x values of the batch.
            y: The concatenated standardized y values.
            weight: Row weights (positive), or ``None``: unweighted.
            starts: Start offset of each dataset; each holds at least one row.
            begin: ``(a, c, σ)`` starting vectors (σ > 0).
            frame: The per-dataset map (standardized: the identity; ``free_b`` 0 without intercept).

        Returns:
            One outcome entry per dataset.
        """
        size = len(starts)
        padded = self._pad_datasets(size, begin, frame)
        return self._run("huber", self._rows_data(x, y, weight, starts), *padded, size)
