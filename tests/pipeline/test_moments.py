"""Moments against numpy references: one pass, merged three ways, streamed, huge values."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.reduce.moments import Moments, MomentsBuilder, concat, empty, merge, reduce_runs, segment_moments


def _reference(x: np.ndarray, y: np.ndarray) -> dict:
    """Centred sums in extended precision (80-bit where the platform has it)."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok].astype(np.longdouble), y[ok].astype(np.longdouble)
    mx, my = x.mean(), y.mean()
    cxx, cxy, cyy = ((x - mx) ** 2).sum(), ((x - mx) * (y - my)).sum(), ((y - my) ** 2).sum()
    residual = (y - my) - (cxy / cxx) * (x - mx)
    return {"n": x.size, "mean_x": mx, "mean_y": my, "cxx": cxx, "cxy": cxy, "cyy": cyy, "rss": (residual**2).sum()}


def _unscaled(m: Moments, i: int = 0) -> dict:
    sx, sy = m.scale_x[i], m.scale_y[i]
    return {
        "n": int(m.n[i]),
        "mean_x": m.mean_x[i] * sx,
        "mean_y": m.mean_y[i] * sy,
        "cxx": m.cxx[i] * sx * sx,
        "cxy": m.cxy[i] * sx * sy,
        "cyy": m.cyy[i] * sy * sy,
        "rss": m.rss[i] * sy * sy,
    }


def _assert_close(got: dict, want: dict, rel: float) -> None:
    assert got["n"] == want["n"]
    for key in ("mean_x", "mean_y", "cxx", "cxy", "cyy", "rss"):
        assert float(got[key]) == pytest.approx(float(want[key]), rel=rel, abs=1e-300), key


def _data(rng: np.random.Generator, n: int, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(rng.uniform(-100, 100), rng.uniform(0.1, 10), n)
    return x, rng.normal() * x + rng.normal() * 10 + rng.normal(0, noise, n)


def test_segments_match_a_direct_computation() -> None:
    rng = np.random.default_rng(1)
    pieces = [_data(rng, n) for n in (2, 17, 1000, 3)]
    x = np.concatenate([p[0] for p in pieces])
    y = np.concatenate([p[1] for p in pieces])
    x[5] = np.nan
    y[30] = np.inf
    starts = np.cumsum([0, 2, 17, 1000])
    m = segment_moments(x, y, starts)
    assert m.n.tolist() == [2, 16, 999, 3] and m.n_dropped.tolist() == [0, 1, 1, 0]
    for i, (start, end) in enumerate(zip(starts, [*starts[1:], x.size], strict=True)):
        _assert_close(_unscaled(m, i), _reference(x[start:end], y[start:end]), 1e-12)
        assert m.min_x[i] == np.nanmin(np.where(np.isfinite(y[start:end]), x[start:end], np.nan))


def test_merging_one_by_one_pairwise_and_as_a_tree_agree_with_one_pass() -> None:
    rng = np.random.default_rng(2)
    x, y = _data(rng, 3000)
    starts = np.sort(rng.choice(np.arange(1, 3000), 40, replace=False))
    parts = segment_moments(x, y, np.append(0, starts))
    whole = _reference(x, y)
    one_by_one = parts.take(slice(0, 1))
    for i in range(1, len(parts)):
        one_by_one = merge(one_by_one, parts.take(slice(i, i + 1)))
    _assert_close(_unscaled(one_by_one), whole, 1e-11)
    _assert_close(_unscaled(reduce_runs(parts, np.array([0]))), whole, 1e-11)
    halves = reduce_runs(parts, np.array([0, 20]))
    _assert_close(_unscaled(merge(halves.take(slice(0, 1)), halves.take(slice(1, 2)))), whole, 1e-11)


def test_merged_rss_keeps_its_digits_for_a_near_perfect_line() -> None:
    # rss is 1e-14 of cyy here: cyy − cxy²/cxx would keep no correct digit.
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 100, 5000)
    y = 3.0 * x + 1.0 + rng.normal(0, 1e-5, 5000)
    parts = segment_moments(x, y, np.arange(0, 5000, 250))
    merged = _unscaled(reduce_runs(parts, np.array([0])))
    assert merged["rss"] == pytest.approx(float(_reference(x, y)["rss"]), rel=1e-9)


def test_huge_and_tiny_values_do_not_overflow_or_underflow() -> None:
    rng = np.random.default_rng(4)
    for exponent in (-300, -150, 150, 300, 307):
        x = rng.uniform(1, 2, 200) * 10.0**exponent
        y = 2 * x + rng.normal(0, 0.1, 200) * 10.0**exponent
        m = reduce_runs(segment_moments(x, y, np.array([0, 50, 120])), np.array([0]))
        scaled = _reference(x / 10.0**exponent, y / 10.0**exponent)
        assert np.isfinite(m.cxx[0]) and m.cxx[0] > 0
        r_got = m.cxy[0] / np.sqrt(m.cxx[0] * m.cyy[0])
        r_want = scaled["cxy"] / np.sqrt(scaled["cxx"] * scaled["cyy"])
        assert float(r_got) == pytest.approx(float(r_want), rel=1e-12)


def test_merge_with_empty_entries_is_the_identity() -> None:
    rng = np.random.default_rng(5)
    part = segment_moments(*_data(rng, 50), np.array([0]))
    for merged in (merge(part, empty(1)), merge(empty(1), part)):
        assert all(np.array_equal(a, b) for a, b in zip(merged, part, strict=True))
    assert empty(3).n.tolist() == [0, 0, 0]


def test_builder_streams_chunks_flushes_and_discards() -> None:
    rng = np.random.default_rng(6)
    data = [_data(rng, n) for n in (100, 0, 777, 5)]
    builder = MomentsBuilder(flush_rows=128)
    builder.add(0, *data[0])
    builder.add(1, np.arange(3.0), np.arange(3.0))  # an unreadable dataset, forgotten below
    builder.discard(1)
    for owner, (x, y) in enumerate(data[1:], start=1):
        for start in range(0, len(x), 64):
            builder.add(owner, x[start : start + 64], y[start : start + 64])
    result = builder.result(4)
    assert result.n.tolist() == [100, 0, 777, 5]
    for i in (0, 2, 3):
        _assert_close(_unscaled(result, i), _reference(*data[i]), 1e-11)


def test_reduce_runs_is_bit_identical_on_reruns() -> None:
    rng = np.random.default_rng(7)
    x, y = _data(rng, 5000)
    parts = segment_moments(x, y, np.arange(0, 5000, 97))
    runs = np.array([0, 3, 10, 30])
    first, second = reduce_runs(parts, runs), reduce_runs(concat([parts]), runs)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_weighted_moments_match_a_direct_computation_and_merge() -> None:
    rng = np.random.default_rng(6)
    x, y = _data(rng, 3000)
    weights = rng.uniform(0, 5, 3000)
    weights[::7] = 0.0
    weights[5], weights[6], weights[8] = np.nan, -1.0, np.inf
    starts = np.array([0, 1000, 2000])
    parts = segment_moments(x, y, starts, weights)
    merged = reduce_runs(parts, np.array([0]))
    keep = np.isfinite(weights) & (weights >= 0)
    c, xs, ys = weights[keep].astype(np.longdouble), x[keep].astype(np.longdouble), y[keep].astype(np.longdouble)
    total = c.sum()
    mx, my = (c * xs).sum() / total, (c * ys).sum() / total
    cxx, cxy = (c * (xs - mx) ** 2).sum(), (c * (xs - mx) * (ys - my)).sum()
    rss = (c * ((ys - my) - cxy / cxx * (xs - mx)) ** 2).sum()
    got = _unscaled(merged)
    assert (int(merged.n[0]), int(merged.n_dropped[0])) == (int(keep.sum()), 3)
    assert int(merged.n_pos[0]) == int(np.sum(keep & (weights > 0)))
    assert float(merged.weight[0]) == pytest.approx(float(total), rel=1e-13)
    for key, want in (("mean_x", mx), ("mean_y", my), ("cxx", cxx), ("cxy", cxy), ("rss", rss)):
        assert float(got[key]) == pytest.approx(float(want), rel=1e-11), key
    assert merged.min_x[0] == np.min(x[keep & (weights > 0)])


def test_unit_weights_give_the_unweighted_moments() -> None:
    rng = np.random.default_rng(7)
    x, y = _data(rng, 500)
    plain = segment_moments(x, y, np.array([0, 100]))
    weighted = segment_moments(x, y, np.array([0, 100]), np.ones(500))
    for name in ("n", "n_pos", "weight"):
        assert np.array_equal(getattr(plain, name), getattr(weighted, name)), name
    for i in (0, 1):
        _assert_close(_unscaled(weighted, i), _unscaled(plain, i), 1e-12)


@pytest.mark.parametrize("tiny", [1e-300, 1e-170])
def test_a_tiny_column_beside_an_ordinary_one_is_scaled(tiny: float) -> None:
    """An ordinary x (holding 0) beside a tiny y: y still gets its own power-of-two scale."""
    x = np.arange(40.0)
    y = tiny * (3 * x + 1 + np.sin(x))
    m = segment_moments(x, y, np.array([0, 20]))
    for i, (start, end) in enumerate(((0, 20), (20, 40))):
        want = _reference(x[start:end], y[start:end] / tiny)
        assert m.cyy[i] * (m.scale_y[i] / tiny) ** 2 == pytest.approx(float(want["cyy"]), rel=1e-12)
        assert m.rss[i] * (m.scale_y[i] / tiny) ** 2 == pytest.approx(float(want["rss"]), rel=1e-9)
