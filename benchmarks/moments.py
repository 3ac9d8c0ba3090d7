"""Centred least-squares moments per group, merged batch by batch (Chan et al.), in numpy.

The numpy closed-form contender reads each batch once and keeps, per dataset, the row count,
the means of x and y and the centred sums ``Sxx = Σ(x−x̄)²``, ``Sxy = Σ(x−x̄)(y−ȳ)``; merging
two groups adds the between-group term, so the result equals the two-pass centred form
without a second read. Then ``w = Sxy/Sxx`` and ``b = ȳ − w·x̄``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Moments"]


class Moments:
    """Per-group moments for ``n_groups`` groups, grown on demand."""

    def __init__(self, n_groups: int = 0) -> None:
        self.n = np.zeros(n_groups)
        self.mx = np.zeros(n_groups)
        self.my = np.zeros(n_groups)
        self.sxx = np.zeros(n_groups)
        self.sxy = np.zeros(n_groups)

    def _grow(self, size: int) -> None:
        if size > self.n.size:
            extra = size - self.n.size
            for name in ("n", "mx", "my", "sxx", "sxy"):
                setattr(self, name, np.concatenate([getattr(self, name), np.zeros(extra)]))

    def add(self, codes: np.ndarray | int, x: np.ndarray, y: np.ndarray) -> None:
        """Fold rows into their groups.

        Args:
            codes: Group index of every row (int array), or one int for all rows.
            x: Float64 x values.
            y: Float64 y values.
        """
        if np.isscalar(codes):
            groups = np.array([int(codes)])
            n_b = np.array([float(x.size)])
            mx_b, my_b = np.array([x.mean()]), np.array([y.mean()])
            dx, dy = x - mx_b[0], y - my_b[0]
            sxx_b, sxy_b = np.array([dx @ dx]), np.array([dx @ dy])
        else:
            size = int(codes.max()) + 1
            counts = np.bincount(codes, minlength=size).astype(np.float64)
            groups = np.flatnonzero(counts)
            n_b = counts[groups]
            mx_b = np.bincount(codes, weights=x, minlength=size)[groups] / n_b
            my_b = np.bincount(codes, weights=y, minlength=size)[groups] / n_b
            position = np.zeros(size, dtype=np.int64)
            position[groups] = np.arange(groups.size)
            dx, dy = x - mx_b[position[codes]], y - my_b[position[codes]]
            sxx_b = np.bincount(codes, weights=dx * dx, minlength=size)[groups]
            sxy_b = np.bincount(codes, weights=dx * dy, minlength=size)[groups]
        self._merge(groups, n_b, mx_b, my_b, sxx_b, sxy_b)

    def _merge(
        self, g: np.ndarray, n_b: np.ndarray, mx_b: np.ndarray, my_b: np.ndarray, sxx_b: np.ndarray, sxy_b: np.ndarray
    ) -> None:
        self._grow(int(g.max()) + 1)
        n_a = self.n[g]
        n = n_a + n_b
        dx, dy = mx_b - self.mx[g], my_b - self.my[g]
        cross = n_a * n_b / n
        self.sxx[g] += sxx_b + dx * dx * cross
        self.sxy[g] += sxy_b + dx * dy * cross
        self.mx[g] += dx * n_b / n
        self.my[g] += dy * n_b / n
        self.n[g] = n

    def fit(self) -> tuple[np.ndarray, np.ndarray]:
        """Slope and intercept of every group (NaN where x is constant or a group is empty)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            w = self.sxy / self.sxx
        return w, self.my - w * self.mx
