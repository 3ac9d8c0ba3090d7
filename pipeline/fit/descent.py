"""The compiled descent: one ``tf.while_loop`` fitting many datasets at once, per loss.

With :mod:`pipeline.fit.loops` and :mod:`pipeline.fit.losses` the only modules that
import TensorFlow; nothing here knows about files or Beam. :class:`Descent` compiles one
function per loss form (the squared loss from moments or row by row, Huber row by row),
each a loop of :mod:`pipeline.fit.loops` around a loss of :mod:`pipeline.fit.losses`,
and lays the rows out for it.

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

from pipeline.fit import loops, losses  # noqa: E402 (after TensorFlow, imported above without Keras)
from pipeline.fit.frame import Frame  # noqa: E402

__all__ = ["BLOCK", "Descent", "DescentOutcome"]

BLOCK = 128  # rows per block of the row form: as fast as wider ones, little padding for small datasets


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
            return loops.plain(quadratic, [w0, b0], Frame(*frame), settings, "squared_gram")

        matrix = tf.TensorSpec([None, None], real)
        rows = [matrix, matrix, matrix, index, index, vector]

        @tf.function(input_signature=rows + [vector] * 2 + frame + settings, jit_compile=True, autograph=False)
        def squared_rows(x, y, weight, valid, segment, total, w0, b0, *rest):  # noqa: ANN001, ANN002, ANN202
            frame, settings = rest[: len(Frame._fields)], rest[len(Frame._fields) :]
            loss = losses.squared_rows(x, y, losses.row_weights(weight, valid, x), segment, total)
            return loops.plain(loss, [w0, b0], Frame(*frame), settings, "squared_rows")

        @tf.function(input_signature=rows + [vector] * 3 + frame + settings, jit_compile=True, autograph=False)
        def huber_rows(x, y, weight, valid, segment, total, a0, c0, s0, *rest):  # noqa: ANN001, ANN002, ANN202
            frame, settings = rest[: len(Frame._fields)], rest[len(Frame._fields) :]
            loss = losses.huber_rows(x, y, losses.row_weights(weight, valid, x), segment, total, settings[3])
            return loops.newton(loss, [a0, c0, s0], Frame(*frame), settings)

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
