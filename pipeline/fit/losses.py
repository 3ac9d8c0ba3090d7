"""The losses the compiled loop minimises: each one small definition, plugged into the shared loop.

A loss is a function of per-dataset parameter vectors that returns one loss per dataset;
:mod:`pipeline.fit.descent` differentiates it with ``tf.GradientTape``. Three are defined:

* ``squared_gram``: the mean squared error from a dataset's moments, O(1) a step;
* ``squared_rows``: the same loss row by row (weighted mean of (θ₁·x + θ₂ − y)²);
* ``huber_rows``: Owen's concomitant-scale Huber objective, the formulation of
  scikit-learn's ``HuberRegressor`` and Spark ML (no penalty),
  L(a, c, σ) = Σᵢ cᵢ·(σ + σ·H_ε(rᵢ/σ)) / Σᵢ cᵢ, rᵢ = yᵢ − a·xᵢ − c,
  H_ε(z) = z² if |z| < ε, else 2ε|z| − ε².

Its curvature (Hessian) in (a, c, σ) is H = (2/σ)·M, M the weighted mean, over the
rows inside the band (|z| < ε, z = r/σ), of v·vᵀ with v = (x, 1, z) (rows outside the
band are linear in (a, c, σ)). A fixed step would diverge as σ shrinks, so the loop
preconditions the Huber step by the inverse curvature: θ ← θ − η·σ·M⁻¹·∇L
(:func:`newton_direction`), whose scaled curvature is 2·I, as the squared loss's on
standardized data; η = 1/2 (the Huber default) is a Newton step. Where the band changes
between steps the objective is not the quadratic the step assumed, so the loop damps
the step (Levenberg–Marquardt, M + μ·I): a step that would raise the loss is retried
with a larger μ, shorter and closer to the gradient's direction.

TensorFlow only (imported through :mod:`pipeline.fit.descent`); no Beam.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = [
    "floor_terms",
    "huber_rows",
    "newton_direction",
    "row_weights",
    "squared_gram",
    "squared_rows",
]


def squared_gram(floor, curvature, slope, mean_x, mean_y):  # noqa: ANN001, ANN201 (tensors)
    """Lᵢ(θ₁, θ₂) = floorᵢ + curvatureᵢ·(θ₁ − slopeᵢ)² + (θ₁·mean_xᵢ + θ₂ − mean_yᵢ)²."""

    def loss(w, b):  # noqa: ANN001, ANN202
        return floor + curvature * tf.square(w - slope) + tf.square(w * mean_x + b - mean_y)

    return loss


def row_weights(weight, valid, x):  # noqa: ANN001, ANN201
    """Each row's weight, 0 on padding.

    ``weight`` ([blocks, BLOCK], or [1, 1] ones when unweighted) masked by each block's
    count of valid rows (``valid``): the mask is computed where it is used, not read.
    """
    inside = tf.range(tf.shape(x)[1])[None, :] < valid[:, None]
    return weight * tf.cast(inside, x.dtype)


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
        """M's six entries (xx, x, xz, 1, z, zz): weighted means over the in-band rows of v·vᵀ, v = (x, 1, z)."""
        sigma = _per_block(scale, owner)
        z = (y - _per_block(a, owner) * x - _per_block(c, owner)) / sigma
        band = weight * tf.cast(tf.abs(z) < epsilon, z.dtype)
        bx, bz = band * x, band * z
        terms = (bx * x, bx, bx * z, band, bz, bz * z)
        return [tf.math.unsorted_segment_sum(tf.reduce_sum(t, axis=1), owner, size) / total for t in terms]

    loss.curvature = curvature
    return loss


def newton_direction(curvature: list, grads: list, sigma, damping, free_b):  # noqa: ANN001, ANN201
    """The Huber step's direction σ·(M + μ·I)⁻¹·∇L per dataset (the loop subtracts η times it).

    ``curvature`` is M's six entries (:func:`huber_rows`' ``loss.curvature``), μ =
    ``damping`` (Levenberg–Marquardt: tiny while steps succeed, raised while they fail;
    it also keeps a singular M, e.g. a band of one or two rows, invertible). Solved in
    closed form, the 3×3 adjugate, elementwise so XLA fuses it. Without an intercept
    (``free_b`` 0) c is fixed: its row and column of M are the identity's.
    """
    xx, x1, xz, one, z1, zz = curvature
    a, b, c = xx + damping, x1 * free_b, xz
    d, e, f = one * free_b + (1.0 - free_b) + damping, z1 * free_b, zz + damping
    ca, cb, cc = d * f - e * e, c * e - b * f, b * e - c * d
    cd, ce, cf = a * f - c * c, b * c - a * e, a * d - b * b
    ga, gb, gs = grads
    scale = sigma / (a * ca + b * cb + c * cc)
    return [
        scale * (ca * ga + cb * gb + cc * gs),
        scale * (cb * ga + cd * gb + ce * gs),
        scale * (cc * ga + ce * gb + cf * gs),
    ]


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
