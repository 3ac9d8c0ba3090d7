"""The per-dataset constants that put a loop's gradient on the standardized scale (no TensorFlow)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Frame"]


class Frame(NamedTuple):
    """Per-dataset constants that put the loop's gradient and parameters on the standardized scale.

    With the loop on standardized data every map is the identity (``ga=1, gb=0, gc=1``,
    ``pa=1, pb=1, pw=0``); on raw data (``--no_standardize``) they convert (w, b)
    gradients and magnitudes to the standardized (a, c), so ``--tolerance`` means the
    same whatever the data's units.

    Attributes:
        ga: ∂L_std/∂a = ga·∂L/∂θ₁ + gb·∂L/∂θ₂.
        gb: See ``ga``.
        gc: ∂L_std/∂c = gc·∂L/∂θ₂ (0 when θ₂ is fixed: no intercept).
        pa: |a| ≈ pa·|θ₁|, for the rounding floor.
        pb: |c| ≈ pb·|θ₂| + pw·|θ₁|.
        pw: See ``pb``.
        free_b: 1 where θ₂ (the intercept) is fitted, 0 where it stays at its start (0).
        rows: Rows of each dataset (the row form's summation noise grows with √n); 0 for Gram.
        lscale: The loop's loss times this is the standardized loss (1/σy² on raw data).
    """

    ga: np.ndarray
    gb: np.ndarray
    gc: np.ndarray
    pa: np.ndarray
    pb: np.ndarray
    pw: np.ndarray
    free_b: np.ndarray
    rows: np.ndarray
    lscale: np.ndarray

    @staticmethod
    def standardized(size: int, intercept: bool = True, rows: np.ndarray | None = None) -> Frame:
        """The identity frame of a loop on standardized data."""
        ones, zeros = np.ones(size), np.zeros(size)
        free = ones if intercept else zeros
        return Frame(ones, zeros, free, ones, ones, zeros, free, zeros if rows is None else rows, ones)
