"""The loop's coordinates: standardization from a dataset's moments, and the exact way back.

By default (``standardize``) the loop descends on u = (x − μx)/σx, v = (y − μy)/σy
(weighted means and population deviations; without an intercept on u = x/√mean(x²),
v = y/√mean(y²)), where the squared loss is L(a, c) = q + (a − r)² + c² for every
dataset: Hessian 2·I, a fixed step converges at the same rate whatever the data's
units. Everything here works in the moments' *scaled* units (data divided by exact
powers of two), so data anywhere in the float64 range is standardized without overflow,
underflow or lost digits, and x far from 0 keeps its digits (the centre is subtracted
from values already divided exactly, never from values rounded by a division).

Back in data units the slope is evaluated as w = β + (a − r)·σy/σx rather than
a·σy/σx: the same number in exact arithmetic, but the rounding of r and σy/σx no longer
reaches w, and b = μy − w·μx + σy·c takes w·μx as an exact two-term product, so a
converged fit keeps the digits of the least-squares solution (NIST Norris: w and b to
12+ digits). No Beam, no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.fit.frame import Frame
from pipeline.reduce.moments import Moments

__all__ = ["Scaling", "slope_to_data", "slope_to_scaled", "two_product"]

_SPLIT = 134217729.0  # 2²⁷ + 1: Dekker's split of a double into two halves


def two_product(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(p, e)`` with p = fl(a·b) and p + e = a·b exactly (Dekker); e = 0 where a split overflows."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        product = a * b
        ca, cb = _SPLIT * a, _SPLIT * b
        a_hi, b_hi = ca - (ca - a), cb - (cb - b)
        a_lo, b_lo = a - a_hi, b - b_hi
        error = ((a_hi * b_hi - product) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
    return product, np.where(np.isfinite(error), error, 0.0)


def _exponent(power: np.ndarray) -> np.ndarray:
    return np.frexp(power)[1] - 1


def slope_to_data(slope: np.ndarray, scale_x: np.ndarray, scale_y: np.ndarray) -> np.ndarray:
    """A slope in scaled units times scale_y/scale_x, exactly (no overflowing ratio of scales)."""
    return np.ldexp(slope, _exponent(scale_y) - _exponent(scale_x))


def slope_to_scaled(slope: np.ndarray, scale_x: np.ndarray, scale_y: np.ndarray) -> np.ndarray:
    """The inverse of :func:`slope_to_data`."""
    return np.ldexp(slope, _exponent(scale_x) - _exponent(scale_y))


@dataclass(frozen=True)
class Scaling:
    """Per-dataset standardization of a batch (every field a vector), from complete moments.

    Attributes:
        intercept: Whether the model has an intercept (else y = w·x, b = 0).
        scale_x: Power of two: data x = scale_x · scaled x.
        scale_y: Power of two for y.
        mean_x: Weighted mean of scaled x (the centre; unused without intercept).
        mean_y: Weighted mean of scaled y.
        spread_x: σx (population, weighted), or √mean(x²) without intercept; scaled units.
        spread_y: The same for y; 1 where y is constant (v is then 0).
        slope: The least-squares slope β in scaled units (Cxy/Cxx, or Σxy/Σx²).
        target: r, the least-squares a: β·spread_x/spread_y.
        rest: q = 1 − r², the standardized loss left at the least-squares line.
        constant_y: Where y is constant (r² undefined).
    """

    intercept: bool
    scale_x: np.ndarray
    scale_y: np.ndarray
    mean_x: np.ndarray
    mean_y: np.ndarray
    spread_x: np.ndarray
    spread_y: np.ndarray
    slope: np.ndarray
    target: np.ndarray
    rest: np.ndarray
    constant_y: np.ndarray

    @classmethod
    def from_moments(cls, m: Moments, intercept: bool = True) -> Scaling:
        """The standardization of each dataset of ``m`` (each with ≥ 2 rows and a usable x).

        Args:
            m: Complete moments, one entry per dataset.
            intercept: Whether the model has an intercept.

        Returns:
            The per-dataset scaling.
        """
        weight = m.weight
        constant_y = m.min_y == m.max_y
        with np.errstate(divide="ignore", invalid="ignore"):
            if intercept:
                sxx, syy, sxy = m.cxx, m.cyy, m.cxy
                rest_sum = m.rss
            else:  # uncentred sums from the centred ones: no cancellation in Σx², Σy²
                sxx = m.cxx + weight * m.mean_x * m.mean_x
                syy = m.cyy + weight * m.mean_y * m.mean_y
                sxy = m.cxy + weight * m.mean_x * m.mean_y
                constant_y = syy == 0
                slope0 = sxy / sxx
                # R₀ = R + Cxx(β₀ − β)² + W(β₀x̄ − ȳ)²: every term ≥ 0, no cancellation
                beta = np.divide(m.cxy, m.cxx, out=np.zeros_like(m.cxy), where=m.cxx > 0)
                rest_sum = m.rss + m.cxx * np.square(slope0 - beta) + weight * np.square(slope0 * m.mean_x - m.mean_y)
            syy = np.where(constant_y, 0.0, syy)
            spread_x = np.sqrt(sxx / weight)
            spread_y = np.where(constant_y, 1.0, np.sqrt(syy / weight))
            slope = sxy / sxx
            target = np.where(constant_y, 0.0, sxy / np.sqrt(sxx) / np.sqrt(np.where(constant_y, 1.0, syy)))
            rest = np.where(constant_y, 0.0, rest_sum / np.where(constant_y, 1.0, syy))
        return cls(
            intercept, m.scale_x, m.scale_y, m.mean_x, m.mean_y, spread_x, spread_y,
            np.where(constant_y, 0.0, slope), target, rest, constant_y,
        )  # fmt: skip

    def __len__(self) -> int:
        return int(self.scale_x.size)

    def take(self, index: np.ndarray) -> Scaling:
        """The entries at ``index``."""
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return Scaling(**{k: v if k == "intercept" else v[index] for k, v in fields.items()})

    @property
    def ratio(self) -> np.ndarray:
        """σy/σx in scaled units: dw/da."""
        return self.spread_y / self.spread_x

    # --- standardized loop -------------------------------------------------------------

    def quadratic(self) -> tuple[np.ndarray, ...]:
        """The standardized squared loss as the Gram quadratic: (q, 1, r, 0, 0)."""
        ones, zeros = np.ones(len(self)), np.zeros(len(self))
        return self.rest, ones, self.target, zeros, zeros

    def rows(self, x: np.ndarray, y: np.ndarray, segment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Standardize concatenated rows (``segment`` = each row's dataset index)."""
        xs = x / self.scale_x[segment]  # exact: a power of two
        ys = y / self.scale_y[segment]
        if self.intercept:
            u = (xs - self.mean_x[segment]) / self.spread_x[segment]
            v = (ys - self.mean_y[segment]) / self.spread_y[segment]
        else:
            u = xs / self.spread_x[segment]
            v = ys / self.spread_y[segment]
        return u, np.where(self.constant_y[segment], 0.0, v)

    def back(self, a: np.ndarray, c: np.ndarray, anchored: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(w, b) in data units from the standardized loop's (a, c).

        Args:
            a: Standardized slopes.
            c: Standardized intercepts (ignored without intercept: b is 0).
            anchored: Evaluate w as β + (a − r)·σy/σx (the squared loss, whose optimum
                is a = r); ``False`` for losses without that anchor (Huber): w = a·σy/σx.
        """
        slope, target = (self.slope, self.target) if anchored else (0.0, 0.0)
        with np.errstate(over="ignore", invalid="ignore"):
            w_scaled = slope + (a - target) * self.ratio
            w = slope_to_data(w_scaled, self.scale_x, self.scale_y)
            if not self.intercept:
                return w, np.zeros_like(w)
            product, error = two_product(w_scaled, self.mean_x)
            b = (((self.mean_y - product) - error) + self.spread_y * c) * self.scale_y
        return w, b

    def to_loop(self, w: np.ndarray, b: np.ndarray, anchored: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The inverse of :meth:`back`: (a, c) from (w, b) in data units (warm starts)."""
        slope, target = (self.slope, self.target) if anchored else (0.0, 0.0)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            w_scaled = slope_to_scaled(w, self.scale_x, self.scale_y)
            a = target + (w_scaled - slope) / self.ratio
            c = (b / self.scale_y - self.mean_y + w_scaled * self.mean_x) / self.spread_y if self.intercept else 0 * a
        return a, c

    def standardized_frame(self, rows: np.ndarray | None = None) -> Frame:
        """The identity frame of the standardized loop."""
        return Frame.standardized(len(self), self.intercept, rows)

    # --- raw loop (--no_standardize): (w, b) in data units ------------------------------

    def _data_units(self) -> tuple[np.ndarray, ...]:
        with np.errstate(over="ignore", invalid="ignore"):
            return (
                self.spread_x * self.scale_x,
                self.spread_y * self.scale_y,
                self.mean_x * self.scale_x,
                self.mean_y * self.scale_y,
            )

    def raw_quadratic(self) -> tuple[np.ndarray, ...]:
        """The mean squared error in data units as the Gram quadratic (may overflow: then it diverges)."""
        sx, sy, mx, my = self._data_units()
        with np.errstate(over="ignore", invalid="ignore"):
            floor = self.rest * np.square(sy)  # R/W in data units (R₀/W without intercept)
            curvature = np.square(sx)
            slope = slope_to_data(self.slope, self.scale_x, self.scale_y)
            if not self.intercept:
                return floor, curvature, slope, np.zeros_like(mx), np.zeros_like(my)
            return floor, curvature, slope, mx, my

    def raw_frame(self, rows: np.ndarray | None = None) -> Frame:
        """The map of the raw loop's (w, b) gradient and magnitudes to standardized (a, c)."""
        sx, sy, mx, _ = self._data_units()
        zeros = np.zeros(len(self))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            ga = 1.0 / (sx * sy)
            if self.intercept:
                free = np.ones(len(self))
                gb, gc, pb, pw = -mx * ga, 1.0 / sy, 1.0 / sy, np.abs(mx) / sy
            else:
                free = zeros
                gb, gc, pb, pw = zeros, zeros, zeros, zeros
            return Frame(ga, gb, gc, sx / sy, pb, pw, free, zeros if rows is None else rows, 1.0 / np.square(sy))

    def offset(self, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(a − r, c) of a raw (w, b): how far from the least-squares line, standardized."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            w_scaled = slope_to_scaled(w, self.scale_x, self.scale_y)
            away = (w_scaled - self.slope) / self.ratio
            if not self.intercept:
                return away, np.zeros_like(away)
            product, error = two_product(w_scaled, self.mean_x)
            c = (b / self.scale_y - ((self.mean_y - product) - error)) / self.spread_y
        return away, c
