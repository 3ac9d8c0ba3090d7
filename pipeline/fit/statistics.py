"""What a fitted line is worth, in float64 and data units: loss, r², standard errors, outliers.

For the squared loss everything comes from the dataset's moments (exactly, without
cancellation): SSE(w, b) = R + Cxx·(w − β)² + W·(w·x̄ + b − ȳ)² in scaled units, so a
near-perfect fit keeps its digits and data anywhere in the float64 range gives finite
ratios (r², relative errors) even where the squared error itself underflows. The
standard errors are the classical ones (statsmodels OLS/WLS ``bse``, R's ``lm``):
s² = Σcᵢrᵢ²/(n⁺ − p), n⁺ the rows with a positive weight, p = 2 (1 without intercept).

For Huber the objective, its gradient and the outlier count are summed over the rows.
No Beam, no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.fit.scaling import Scaling, slope_to_data, slope_to_scaled
from pipeline.reduce.moments import Moments

__all__ = ["HuberRows", "LineStatistics", "huber_rows", "rows_gradient", "squared_gradient", "squared_statistics"]


@dataclass(frozen=True)
class LineStatistics:
    """Per-dataset figures of fitted lines (vectors; NaN where undefined).

    Attributes:
        final_loss: The objective per unit weight, data units (may underflow to 0).
        r2: 1 − SSE/SST (uncentred SST without intercept); NaN for constant y.
        w_stderr: Standard error of w; NaN when n⁺ ≤ p.
        b_stderr: Standard error of b; NaN without intercept or when n⁺ ≤ p.
        scale: Residual standard error √(Σcr²/(n⁺ − p)); NaN when n⁺ ≤ p.
    """

    final_loss: np.ndarray
    r2: np.ndarray
    w_stderr: np.ndarray
    b_stderr: np.ndarray
    scale: np.ndarray


def _sse_scaled(m: Moments, s: Scaling, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σcᵢ(w·xᵢ + b − yᵢ)² in scaled units (divided by scale_y²), every term ≥ 0."""
    with np.errstate(over="ignore", invalid="ignore"):
        w_scaled = slope_to_scaled(w, s.scale_x, s.scale_y)
        b_scaled = b / s.scale_y
        beta = np.divide(m.cxy, m.cxx, out=np.zeros_like(m.cxy), where=m.cxx > 0)
        offset = w_scaled * m.mean_x + b_scaled - m.mean_y
        return m.rss + m.cxx * np.square(w_scaled - beta) + m.weight * np.square(offset)


def squared_statistics(m: Moments, s: Scaling, w: np.ndarray, b: np.ndarray) -> LineStatistics:
    """Loss, r², standard errors and residual scale of lines (w, b) of the squared loss.

    Args:
        m: The datasets' complete moments.
        s: Their scaling (``s.intercept`` tells p).
        w: Fitted slopes, data units.
        b: Fitted intercepts, data units (0 without intercept).

    Returns:
        The statistics, one entry per dataset.
    """
    p = 2 if s.intercept else 1
    sse = _sse_scaled(m, s, w, b)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        mean_square = sse / m.weight
        final_loss = np.square(s.scale_y * np.sqrt(mean_square))
        total = m.cyy if s.intercept else m.cyy + m.weight * np.square(m.mean_y)
        r2 = np.where(s.constant_y | (total <= 0), np.nan, 1.0 - sse / total)
        dof = (m.n_pos - p).astype(np.float64)
        variance = np.where(dof > 0, sse / np.where(dof > 0, dof, 1.0), np.nan)  # scaled units
        sxx = m.cxx if s.intercept else m.cxx + m.weight * np.square(m.mean_x)
        w_stderr = slope_to_data(np.sqrt(variance / sxx), s.scale_x, s.scale_y)
        if s.intercept:
            b_stderr = np.sqrt(variance * (1.0 / m.weight + np.square(m.mean_x) / m.cxx)) * s.scale_y
        else:
            b_stderr = np.full(len(m), np.nan)
        scale = np.sqrt(variance) * s.scale_y
    return LineStatistics(final_loss, r2, w_stderr, b_stderr, scale)


def squared_gradient(away: np.ndarray, c: np.ndarray) -> np.ndarray:
    """‖∇L‖₂ of the standardized squared loss q + (a − r)² + c², from a − r and c (exact)."""
    return 2.0 * np.hypot(away, c)


def _weighted_means(weight: np.ndarray, starts: np.ndarray) -> object:
    total = np.add.reduceat(weight, starts)
    return lambda values: np.add.reduceat(weight * values, starts) / total


def rows_gradient(
    u: np.ndarray, v: np.ndarray, weight: np.ndarray, starts: np.ndarray, a: np.ndarray, c: np.ndarray, intercept: bool
) -> np.ndarray:
    """‖∇L‖₂ of the row-wise standardized squared loss at (a, c), summed in float64.

    The rows' own gradient, not the moments' idealized one: on rows centred with a
    rounded mean (x far from 0) the two optima differ in c by that rounding, which the
    map back absorbs exactly.
    """
    lengths = np.diff(np.append(starts, u.size))
    segment = np.repeat(np.arange(starts.size), lengths)
    residual = a[segment] * u + c[segment] - v
    mean = _weighted_means(weight, starts)
    grad_a = 2.0 * mean(residual * u)
    grad_c = 2.0 * mean(residual) if intercept else np.zeros_like(grad_a)
    return np.hypot(grad_a, grad_c)


@dataclass(frozen=True)
class HuberRows:
    """Huber figures at the fitted (a, c, σ), standardized rows (vectors).

    Attributes:
        loss: The objective per unit weight, standardized units (× σy for data units).
        gradient: ‖∇L‖₂ over (a, c, σ) in float64 (c's part left out without intercept).
        outliers: Rows with |r| > ε·σ.
        sse: Σcᵢrᵢ² of the line, standardized units (for r²).
    """

    loss: np.ndarray
    gradient: np.ndarray
    outliers: np.ndarray
    sse: np.ndarray


def huber_rows(
    u: np.ndarray,
    v: np.ndarray,
    weight: np.ndarray,
    starts: np.ndarray,
    params: tuple[np.ndarray, np.ndarray, np.ndarray],
    epsilon: float,
    intercept: bool,
) -> HuberRows:
    """Evaluate the concomitant-scale Huber objective and its gradient in float64.

    Args:
        u: Standardized x of every dataset's positive-weight rows, concatenated.
        v: Standardized y, same rows.
        weight: Their weights.
        starts: Where each dataset's rows start.
        params: ``(a, c, σ)`` per dataset.
        epsilon: Huber's ε.
        intercept: Whether c is a free parameter (its gradient counts).

    Returns:
        The per-dataset figures.
    """
    a, c, sigma = (np.asarray(p, np.float64) for p in params)
    lengths = np.diff(np.append(starts, u.size))
    segment = np.repeat(np.arange(starts.size), lengths)
    residual = v - a[segment] * u - c[segment]
    z = residual / sigma[segment]
    inlier = np.abs(z) < epsilon
    huber = np.where(inlier, z * z, 2.0 * epsilon * np.abs(z) - epsilon * epsilon)
    slope = np.where(inlier, 2.0 * z, 2.0 * epsilon * np.sign(z))  # H′(z)

    mean = _weighted_means(weight, starts)
    grad_a = -mean(slope * u)
    grad_c = -mean(slope) if intercept else np.zeros_like(a)
    grad_s = mean(1.0 + huber - z * slope)
    return HuberRows(
        loss=sigma * mean(1.0 + huber),
        gradient=np.sqrt(grad_a * grad_a + grad_c * grad_c + grad_s * grad_s),
        outliers=np.add.reduceat((~inlier).astype(np.int64), starts),
        sse=np.add.reduceat(weight * residual * residual, starts),
    )
