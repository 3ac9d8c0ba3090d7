"""The compiled while-loops: graph code, run while :mod:`pipeline.fit.descent` traces.

For each dataset i of a batch a loop minimises a loss Lᵢ(θᵢ), the gradient taken by
``tf.GradientTape``. Parameters are vectors, the tape differentiates the *sum* of the
losses (whose gradient with respect to θᵢ is dataset i's own), and each dataset is
frozen by a mask the moment it stops, so its steps and numbers never depend on its
batch-mates. Two loops:

* :func:`plain` (the squared loss): θ ← θ − η·∇L;
* :func:`newton` (Huber): θ ← θ − η·σ·(M + μ·I)⁻¹·∇L, M the loss's curvature
  (:mod:`pipeline.fit.losses`), a failed step retried with a larger μ.

When a dataset stops (all measured in standardized coordinates, where the loss of
the zero line is 1; see docs/fit.md):

* ``CONVERGED``: ‖∇L‖₂ ≤ max(tolerance, F), with F the rounding floor of the loop's
  dtype, F = ε·((2 + ‖θ‖)·κ + noise): κ = 1 (squared) or 1/σ (Huber), and noise =
  2·√n·T for the row form (T bounds a row's gradient term) — or the update no longer
  changes any parameter (a fixed point at this precision) with ‖∇L‖₂ ≤ max(tolerance, 8·F);
* ``STALLED``: the update no longer changes the parameters while the gradient is above
  that: the step is too small for this precision (not converged);
* ``DIVERGED``: the loss is not finite or has grown past twice its start (Huber, whose
  loss never rises: its start is not finite);
* ``MAX_STEPS``: ``max_steps`` updates without any of the above.

TensorFlow only (imported through :mod:`pipeline.fit.descent`); no Beam.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pipeline.fit import losses
from pipeline.fit.codes import CONVERGED, DIVERGED, MAX_STEPS, RUNNING, STALLED

__all__ = ["newton", "plain"]

# Gradient descent on the squared loss with a step that converges never raises the loss
# above its start (every eigen-component shrinks), so :func:`plain` stops once the loss is
# past twice its start: that proves divergence. (:func:`newton` never lets the loss rise.)
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


def _unchanged(new, old):  # noqa: ANN001, ANN202 (graph code)
    """Per dataset: the update changes no parameter (a fixed point at this precision)."""
    return tf.reduce_all(tf.stack([tf.equal(n, o) for n, o in zip(new, old, strict=True)]), axis=0)


def _next_code(code, diverged, converged, fixed, step, limit):  # noqa: ANN001, ANN202, PLR0913 (graph code)
    """Each dataset's stop code after this step, and whether it moves on (``RUNNING``); a code once set stays."""
    new_code = tf.where(
        diverged,
        DIVERGED,
        tf.where(converged, CONVERGED, tf.where(fixed, STALLED, tf.where(step >= limit, MAX_STEPS, RUNNING))),
    )
    code = tf.where(tf.equal(code, RUNNING), new_code, code)
    return code, tf.equal(code, RUNNING)


def plain(loss_fn, params, frame, settings, kind):  # noqa: ANN001, ANN201 (graph code)
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
        fixed = _unchanged(new, theta)
        converged = (norm <= tf.maximum(tol, floor)) | (fixed & (norm <= tf.maximum(tol, slack * floor)))
        code, move = _next_code(code, diverged, converged, fixed, step, limit)
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


def newton(loss_fn, params, frame, settings):  # noqa: ANN001, ANN201, PLR0915 (graph code)
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
        fixed = _unchanged(new, base)
        converged = (accept & (nbase <= tf.maximum(tol, fbase))) | (fixed & (nbase <= tf.maximum(tol, slack * fbase)))
        diverged = tf.logical_not(tf.math.is_finite(lbase))  # not even the start is finite
        code, move = _next_code(code, diverged, converged, fixed, step, limit)
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
