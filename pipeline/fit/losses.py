"""The losses the compiled loop minimises: each one small definition, plugged into the shared loop.

A loss is a function of per-dataset parameter vectors that returns one loss per dataset;
:mod:`pipeline.fit.descent` differentiates it with ``tf.GradientTape``. Three are defined:

* ``squared_gram``: the mean squared error from a dataset's moments, O(1) a step;
* ``squared_rows``: the same loss row by row (weighted mean of (θ₁·x + θ₂ − y)²);
* ``huber_rows``: Owen's concomitant-scale Huber objective, the formulation of
  scikit-learn's ``HuberRegressor`` and Spark ML (no penalty),
  L(a, c, σ) = Σᵢ cᵢ·(σ + σ·H_ε(rᵢ/σ)) / Σᵢ cᵢ, rᵢ = yᵢ − a·xᵢ − c,
  H_ε(z) = z² if |z| < ε, else 2ε|z| − ε².

Its curvature in (a, c, σ) is (2/σ)·M, M = the weighted mean over the rows with
|z| < ε of (x, 1, −z)(x, 1, −z)ᵀ. A fixed step would diverge as σ shrinks, so the loop
scales the Huber step per parameter by σ/Mₖₖ (:func:`precondition`; Mₖₖ floored at
:data:`CURVATURE_FLOOR`): the scaled curvature is 2·D⁻¹M, 2 on its diagonal like the
squared loss's, with eigenvalues at most 2·3 = 6 (a 3×3 matrix with a unit diagonal).
With σ′ ≥ σ·(1 − 4η) (∂L/∂σ ≤ 1), the step is stable and σ stays positive for
η < 1/7 (:data:`MAX_HUBER_STEP`); the default η = 0.1 converges at about the squared
loss's rate (0.8 a step on clean data).

TensorFlow only (imported through :mod:`pipeline.fit.descent`); no Beam.
"""

from __future__ import annotations

import tensorflow as tf

from pipeline.config.settings import MAX_HUBER_STEP

__all__ = [
    "CURVATURE_FLOOR",
    "MAX_HUBER_STEP",
    "floor_terms",
    "huber_rows",
    "precondition",
    "squared_gram",
    "squared_rows",
]


def squared_gram(floor, curvature, slope, mean_x, mean_y):  # noqa: ANN001, ANN201 (tensors)
    """Lᵢ(θ₁, θ₂) = floorᵢ + curvatureᵢ·(θ₁ − slopeᵢ)² + (θ₁·mean_xᵢ + θ₂ − mean_yᵢ)²."""

    def loss(w, b):  # noqa: ANN001, ANN202
        return floor + curvature * tf.square(w - slope) + tf.square(w * mean_x + b - mean_y)

    return loss


def _per_block(values, owner):  # noqa: ANN001, ANN202
    """A dataset's parameter on every row of its blocks: shape [blocks, 1], broadcast along the rows."""
    return tf.gather(values, owner)[:, None]


def squared_rows(x, y, weight, owner, total):  # noqa: ANN001, ANN201
    """Lᵢ(θ₁, θ₂) = Σ cⱼ·(θ₁·xⱼ + θ₂ − yⱼ)² / Σ cⱼ over dataset i's rows.

    Rows come in blocks: ``x``, ``y``, ``weight`` are [blocks, BLOCK] matrices and
    ``owner`` gives each block's dataset (padding rows have weight 0).
    """
    size = tf.size(total)

    def loss(w, b):  # noqa: ANN001, ANN202
        residual = _per_block(w, owner) * x + _per_block(b, owner) - y
        blocks = tf.reduce_sum(weight * tf.square(residual), axis=1)
        return tf.math.unsorted_segment_sum(blocks, owner, size) / total

    return loss


def huber_rows(x, y, weight, owner, total, epsilon):  # noqa: ANN001, ANN201
    """Lᵢ(a, c, σ) = Σ cⱼ·(σ + σ·H_ε(rⱼ/σ)) / Σ cⱼ, rⱼ = yⱼ − a·xⱼ − c, rows in blocks as above.

    H_ε(z) = k·(2|z| − k) with k = min(|z|, ε): z² inside the band, 2ε|z| − ε² outside.
    """
    size = tf.size(total)

    def loss(a, c, scale):  # noqa: ANN001, ANN202
        sigma = _per_block(scale, owner)
        magnitude = tf.abs(y - _per_block(a, owner) * x - _per_block(c, owner)) / sigma
        inside = tf.minimum(magnitude, epsilon)
        blocks = tf.reduce_sum(weight * (1.0 + inside * (2.0 * magnitude - inside)), axis=1)
        return tf.math.unsorted_segment_sum(blocks * tf.squeeze(sigma, 1), owner, size) / total

    def curvature(a, c, scale):  # noqa: ANN001, ANN202
        """The diagonal of M: weighted means over the in-band rows of x², 1 and z²."""
        sigma = _per_block(scale, owner)
        z = (y - _per_block(a, owner) * x - _per_block(c, owner)) / sigma
        band = weight * tf.cast(tf.abs(z) < epsilon, z.dtype)
        sums = [tf.reduce_sum(band * term, axis=1) for term in (x * x, tf.ones_like(x), z * z)]
        return [tf.math.unsorted_segment_sum(part, owner, size) / total for part in sums]

    loss.curvature = curvature
    return loss


# The Huber step divides by the curvature's diagonal, but never by less than this: where
# few rows lie inside the band the curvature is small and the steps stay bounded.
CURVATURE_FLOOR = 0.25  # with it, η < MAX_HUBER_STEP = 1/7 keeps η·6/(1 − 4η) < 2


def precondition(kind: str, theta: list, loss_fn) -> list:  # noqa: ANN001
    """The per-dataset, per-parameter factors π of the step θ ← θ − η·π·∇L.

    1 for the squared loss (its standardized Hessian is 2·I). For Huber, σ/Mₖₖ: the
    curvature is (2/σ)·M, so this Jacobi scaling makes it 2 on the diagonal, as for the
    squared loss, however small σ gets and whatever share of rows lies in the band.
    """
    if kind != "huber":
        return [tf.ones_like(theta[0])] * len(theta)
    return [theta[2] / tf.maximum(d, CURVATURE_FLOOR) for d in loss_fn.curvature(*theta)]


def floor_terms(kind: str, theta: list, loss, epsilon):  # noqa: ANN001, ANN201
    """(κ, T) of the rounding floor ε·((2 + ‖θ‖)·κ + 2√n·T).

    κ scales the rounding of a residual into the gradient (1/σ for Huber, whose
    residuals are divided by σ); T bounds a row's mean gradient term for the row
    form's summation noise: 2·√L for the squared loss (|r·x| averages at most √L·1),
    2ε for Huber (|H′| ≤ 2ε); the Gram form sums no rows.
    """
    ones = tf.ones_like(theta[0])
    if kind == "huber":
        return 1.0 / theta[2], 2.0 * epsilon * ones
    if kind == "squared_rows":
        return ones, 2.0 * tf.sqrt(tf.maximum(loss, 0.0))
    return ones, tf.zeros_like(ones)
