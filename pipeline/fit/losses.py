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
|z| < ε of (x, 1, −z)(x, 1, −z)ᵀ, whose largest eigenvalue is at most 2 + ε² on
standardized rows (mean x² = 1). A fixed step would diverge as σ shrinks, so the loop
scales the Huber step by σ (:func:`precondition`): the step times the curvature is then
at most 2η(2 + ε²)/(1 − η), below 2 for η < 1/(3 + ε²) (0.207 at ε = 1.35; the default
η is 0.1) whatever σ is, and σ stays positive (σ′ = σ·(1 − η·∂L/∂σ) with
∂L/∂σ ∈ [1 − ε², 1]).

TensorFlow only (imported through :mod:`pipeline.fit.descent`); no Beam.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["floor_terms", "huber_rows", "precondition", "squared_gram", "squared_rows"]


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

    return loss


def precondition(kind: str, theta: list):  # noqa: ANN201
    """The per-dataset factor π of the step θ ← θ − η·π·∇L: 1, or σ for Huber."""
    return theta[2] if kind == "huber" else tf.ones_like(theta[0])


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
