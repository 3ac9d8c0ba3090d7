"""Per-group moments merged batch by batch."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.moments import Moments


def test_moments_merged_in_batches_equal_one_pass():
    rng = np.random.default_rng(0)
    codes, x = rng.integers(0, 5, 1000), rng.normal(3, 2, 1000)
    y = 1.5 * x - 2 + rng.normal(0, 0.1, 1000)
    whole, parts = Moments(), Moments()
    whole.add(codes, x, y)
    for lo in range(0, 1000, 137):
        parts.add(codes[lo : lo + 137], x[lo : lo + 137], y[lo : lo + 137])
    for k in range(5):
        w, b = np.polyfit(x[codes == k], y[codes == k], 1)
        assert whole.fit()[0][k] == pytest.approx(w, rel=1e-12) and parts.fit()[0][k] == pytest.approx(w, rel=1e-12)
        assert parts.fit()[1][k] == pytest.approx(b, rel=1e-12)
