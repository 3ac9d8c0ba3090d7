"""The sufficient statistics of a line fit, computed stably and merged exactly.

The mean squared error of a line over n rows is a quadratic in (w, b)::

    n·L(w, b) = R + Cxx·(w − β)² + n·(w·x̄ + b − ȳ)²

with the centred moments Cxx = Σ(x − x̄)², Cxy = Σ(x − x̄)(y − ȳ), Cyy = Σ(y − ȳ)²,
the least-squares slope β = Cxy / Cxx and R = Cyy − Cxy²/Cxx, the smallest possible
sum of squared errors. Every term is non-negative, so the loss is computed without
cancellation even for near-perfect fits. :class:`Moments` holds these numbers for
many datasets at once (one entry per dataset, as numpy vectors). They are

* computed from rows with two passes (means first, then centred sums; R from the
  residuals of the chunk's own least-squares line), on x and y divided by a power of
  two so that no square overflows (the scaling is exact);
* merged with Chan et al.'s pairwise update, extended to R with the exact identity
  R = R₁ + R₂ + Cxx₁(β₁ − β)² + Cxx₂(β₂ − β)² + h·(Δy − β·Δx)², h = n₁n₂/n,

so a dataset can be read a file or a row group at a time and never held in memory.

With row weights cᵢ (``--weight_column``) every sum is weighted (n becomes W = Σcᵢ in
the means and in the merge); rows whose weight is null, NaN, infinite or negative are
dropped and counted, zero-weight rows carry no information (they count in ``n`` but not
in ``n_pos``, the rows that give a degree of freedom). No Beam and no TensorFlow here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Moments", "MomentsBuilder", "concat", "empty", "merge", "reduce_runs", "segment_moments"]


class Moments(NamedTuple):
    """Fit statistics of several datasets (or chunks), one vector entry each.

    Centred quantities are in scaled units: data = ``scale_x`` · stored x (powers of
    two). Entries with ``n == 0`` hold zeros and ±inf extremes.

    Attributes:
        n: Rows with finite x and y (and, when weighted, a finite weight ≥ 0).
        n_dropped: Rows dropped because x, y (or the weight) was null, NaN, infinite
            (or negative).
        scale_x: Power of two dividing x before the sums.
        scale_y: Power of two dividing y.
        mean_x: Mean of x / scale_x.
        mean_y: Mean of y / scale_y.
        cxx: Σ(x − x̄)², scaled.
        cxy: Σ(x − x̄)(y − ȳ), scaled.
        cyy: Σ(y − ȳ)², scaled.
        rss: Smallest sum of squared errors of any line, scaled (by scale_y²).
        min_x: Smallest x of the rows with a positive weight, data units.
        max_x: Largest such x.
        min_y: Smallest such y.
        max_y: Largest such y.
        weight: Σcᵢ, the total weight (``n`` as a float when unweighted).
        n_pos: Rows with a positive weight (``n`` when unweighted).
    """

    n: np.ndarray
    n_dropped: np.ndarray
    scale_x: np.ndarray
    scale_y: np.ndarray
    mean_x: np.ndarray
    mean_y: np.ndarray
    cxx: np.ndarray
    cxy: np.ndarray
    cyy: np.ndarray
    rss: np.ndarray
    min_x: np.ndarray
    max_x: np.ndarray
    min_y: np.ndarray
    max_y: np.ndarray
    weight: np.ndarray
    n_pos: np.ndarray

    def __len__(self) -> int:  # noqa: D105 (number of datasets, not of fields)
        return int(self.n.size)

    def take(self, index: np.ndarray | slice) -> Moments:
        """Return the entries at ``index``."""
        return Moments(*(field[index] for field in self))


def _power_of_two_at_least(values: np.ndarray) -> np.ndarray:
    """2^e with 2^(e−1) ≤ value < 2^e (1 for zero): dividing by it is exact."""
    _, exponent = np.frexp(values)
    return np.ldexp(1.0, exponent)


# Segments at least this long on average are reduced one by one with a few passes
# over contiguous memory; shorter ones all at once with reduceat.
_LONG_SEGMENT = 4096
# Data within these magnitudes is summed unscaled: no square can overflow or underflow.
_SAFE_RANGE = (2.0**-200, 2.0**200)


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Σ a·b in one pass; einsum, not BLAS, whose threads stall when cores are busy."""
    return float(np.einsum("i,i->", a, b))


def _long_segment(x: np.ndarray, y: np.ndarray) -> tuple:
    """One segment's moment fields (same order as :class:`Moments`) by shifted sums.

    With the first-pass means m as shift, Cxx = Σd² − (Σd)²/n with d = x − m: the
    correction is tiny because m is already the mean to rounding, so no digits are lost.
    """
    size = x.size
    lo_x, hi_x, lo_y, hi_y = x.min(), x.max(), y.min(), y.max()
    if not np.isfinite([lo_x, hi_x, lo_y, hi_y]).all():  # some rows dropped: the general path
        return tuple(field[0] for field in _short_segments(x, y, np.zeros(1, np.int64)))
    sx = _scale_for(max(-lo_x, hi_x))
    sy = _scale_for(max(-lo_y, hi_y))
    xs = x / sx if sx != 1.0 else x
    ys = y / sy if sy != 1.0 else y
    mx, my = xs.sum() / size, ys.sum() / size
    dx, dy = xs - mx, ys - my
    sum_dx, sum_dy = dx.sum(), dy.sum()
    cxx = _dot(dx, dx) - sum_dx * sum_dx / size
    cxy = _dot(dx, dy) - sum_dx * sum_dy / size
    cyy = _dot(dy, dy) - sum_dy * sum_dy / size
    slope = cxy / cxx if cxx > 0 else 0.0
    dy -= slope * dx  # residuals of the least-squares line, up to a constant
    sum_e = dy.sum()
    rss = _dot(dy, dy) - sum_e * sum_e / size
    return (
        size, 0, sx, sy, mx + sum_dx / size, my + sum_dy / size,
        max(cxx, 0.0), cxy, max(cyy, 0.0), max(rss, 0.0), lo_x, hi_x, lo_y, hi_y, float(size), size,
    )  # fmt: skip


def _scale_for(peak: float) -> float:
    """1 for data of ordinary size, else the power of two just above ``peak``."""
    if _SAFE_RANGE[0] <= peak <= _SAFE_RANGE[1] or peak == 0.0:
        return 1.0
    return float(_power_of_two_at_least(np.array([peak]))[0])


def segment_moments(x: np.ndarray, y: np.ndarray, starts: np.ndarray, weights: np.ndarray | None = None) -> Moments:
    """Moments of contiguous row segments.

    Long segments are reduced one by one with a few passes each; many short ones
    together with vectorized ``reduceat`` calls.

    Args:
        x: float64 x values (NaN/inf allowed: such rows are dropped and counted).
        y: float64 y values, same length.
        starts: Increasing start offsets of the segments; each segment runs to the next
            start (the last to the end) and must hold at least one row.
        weights: Optional float64 row weights, same length (null as NaN): rows whose
            weight is NaN, infinite or negative are dropped and counted.

    Returns:
        One :class:`Moments` entry per segment.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    starts = np.asarray(starts, dtype=np.int64)
    if weights is not None:
        return _weighted_segments(x, y, np.asarray(weights, dtype=np.float64), starts)
    if starts.size and x.size >= _LONG_SEGMENT * starts.size:
        ends = np.append(starts[1:], x.size).tolist()
        fields = [_long_segment(x[a:b], y[a:b]) for a, b in zip(starts.tolist(), ends, strict=True)]
        types = (np.int64, np.int64) + (np.float64,) * 13 + (np.int64,)
        return Moments(
            *(np.array(column, dtype=kind) for column, kind in zip(zip(*fields, strict=True), types, strict=True))
        )
    return _short_segments(x, y, starts)


def _short_clean_segments(
    x: np.ndarray, y: np.ndarray, starts: np.ndarray, lengths: np.ndarray, extremes: tuple[np.ndarray, ...]
) -> Moments:
    """Short segments whose rows are all finite and of ordinary size: shifted sums, no masks.

    ``extremes`` are each segment's smallest and largest x, then y.
    """
    count = lengths.astype(np.float64)

    def total(values: np.ndarray, ufunc: np.ufunc = np.add) -> np.ndarray:
        return ufunc.reduceat(values, starts)

    mean_x, mean_y = total(x) / count, total(y) / count
    dx = x - np.repeat(mean_x, lengths)
    dy = y - np.repeat(mean_y, lengths)
    sum_dx, sum_dy = total(dx), total(dy)
    cxx = np.maximum(total(dx * dx) - sum_dx * sum_dx / count, 0.0)
    cxy = total(dx * dy) - sum_dx * sum_dy / count
    cyy = np.maximum(total(dy * dy) - sum_dy * sum_dy / count, 0.0)
    slope = np.divide(cxy, cxx, out=np.zeros_like(cxy), where=cxx > 0)
    dy -= np.repeat(slope, lengths) * dx
    sum_e = total(dy)
    ones = np.ones(starts.size)
    return Moments(
        n=lengths.astype(np.int64),
        n_dropped=np.zeros(starts.size, np.int64),
        scale_x=ones,
        scale_y=ones.copy(),
        mean_x=mean_x + sum_dx / count,
        mean_y=mean_y + sum_dy / count,
        cxx=cxx,
        cxy=cxy,
        cyy=cyy,
        rss=np.maximum(total(dy * dy) - sum_e * sum_e / count, 0.0),
        min_x=extremes[0],
        max_x=extremes[1],
        min_y=extremes[2],
        max_y=extremes[3],
        weight=count,
        n_pos=lengths.astype(np.int64),
    )


def _ordinary(low: np.ndarray, high: np.ndarray) -> bool:
    """Whether every segment's largest magnitude lies where sums of squares cannot over- or underflow.

    ``low`` and ``high`` are each segment's smallest and largest value of one column, so
    ``max(−low, high)`` is its largest magnitude, exactly. Checked per segment and per
    column: a segment whose values are all tiny (or all huge) needs its own power-of-two
    scale even when its neighbours are ordinary.
    """
    peaks = np.maximum(-low, high)
    return bool(np.all((peaks <= _SAFE_RANGE[1]) & ((peaks >= _SAFE_RANGE[0]) | (peaks == 0.0))))


def _short_segments(x: np.ndarray, y: np.ndarray, starts: np.ndarray) -> Moments:
    """:func:`segment_moments` for many short segments, vectorized with ``reduceat``."""
    lengths = np.diff(np.append(starts, x.size))
    if starts.size and x.size and np.all(lengths > 0):
        extremes = tuple(ufunc.reduceat(v, starts) for v in (x, y) for ufunc in (np.minimum, np.maximum))
        if np.isfinite(extremes).all() and _ordinary(*extremes[:2]) and _ordinary(*extremes[2:]):  # NaN spreads
            return _short_clean_segments(x, y, starts, lengths, extremes)
    # rows with NaN, inf or extreme magnitudes: the general path (unit weights; bit-identical to an unweighted one)
    return _weighted_segments(x, y, np.ones_like(x), starts)


def _weighted_segments(x: np.ndarray, y: np.ndarray, w: np.ndarray, starts: np.ndarray) -> Moments:
    """:func:`segment_moments` with row weights: every sum weighted, two passes, scaled by powers of two.

    Masks drop the rows with a non-finite x, y or weight (or a negative weight); each
    column is divided by its own power of two per segment, so no square over- or
    underflows. The weights are scaled too (exactly), and the sums scaled back.
    """
    lengths = np.diff(np.append(starts, x.size))
    segment = np.repeat(np.arange(starts.size), lengths)

    def total(values: np.ndarray, ufunc: np.ufunc = np.add) -> np.ndarray:
        return ufunc.reduceat(values, starts) if starts.size else np.zeros(0)

    valid = np.isfinite(x) & np.isfinite(y) & np.isfinite(w) & (w >= 0)
    positive = valid & (w > 0)
    n = total(valid.astype(np.int64))
    n_pos = total(positive.astype(np.int64))
    x = np.where(positive, x, 0.0)
    y = np.where(positive, y, 0.0)
    w = np.where(positive, w, 0.0)
    scale_x = _power_of_two_at_least(total(np.abs(x), np.maximum))
    scale_y = _power_of_two_at_least(total(np.abs(y), np.maximum))
    scale_w = _power_of_two_at_least(total(w, np.maximum))  # weights only matter relative to each other
    xs, ys, ws = x / scale_x[segment], y / scale_y[segment], w / scale_w[segment]
    weight_s = total(ws)
    count = np.where(weight_s > 0, weight_s, 1.0)
    mean_x = total(ws * xs) / count
    mean_y = total(ws * ys) / count
    mean_x += total(ws * (xs - mean_x[segment])) / count  # second pass: the mean keeps its digits far from zero
    mean_y += total(ws * (ys - mean_y[segment])) / count
    dx = np.where(positive, xs - mean_x[segment], 0.0)
    dy = np.where(positive, ys - mean_y[segment], 0.0)
    cxx = total(ws * dx * dx)
    cxy = total(ws * dx * dy)
    cyy = total(ws * dy * dy)
    slope = np.divide(cxy, cxx, out=np.zeros_like(cxy), where=cxx > 0)
    residual = dy - slope[segment] * dx
    return Moments(
        n=n,
        n_dropped=lengths - n,
        scale_x=scale_x,
        scale_y=scale_y,
        mean_x=mean_x,
        mean_y=mean_y,
        cxx=cxx * scale_w,
        cxy=cxy * scale_w,
        cyy=cyy * scale_w,
        rss=total(ws * residual * residual) * scale_w,
        min_x=total(np.where(positive, x, np.inf), np.minimum),
        max_x=total(np.where(positive, x, -np.inf), np.maximum),
        min_y=total(np.where(positive, y, np.inf), np.minimum),
        max_y=total(np.where(positive, y, -np.inf), np.maximum),
        weight=weight_s * scale_w,
        n_pos=n_pos,
    )


def empty(size: int) -> Moments:
    """``size`` entries of datasets with no rows at all."""
    zeros, ones, inf = np.zeros(size), np.ones(size), np.full(size, np.inf)
    counts = np.zeros(size, np.int64)
    return Moments(
        counts, counts.copy(), ones, ones.copy(), zeros, *(zeros.copy() for _ in range(5)), inf, -inf, inf.copy(), -inf,
        zeros.copy(), counts.copy(),
    )  # fmt: skip


def merge(a: Moments, b: Moments) -> Moments:
    """Moments of the union of the rows of ``a[i]`` and ``b[i]``, for every i.

    The result is exact up to rounding in every term (no cancellation). Merging in a
    fixed order gives bit-identical results on every run.
    """
    scale_x = np.maximum(a.scale_x, b.scale_x)
    scale_y = np.maximum(a.scale_y, b.scale_y)
    fxa, fxb = a.scale_x / scale_x, b.scale_x / scale_x  # exact powers of two ≤ 1
    fya, fyb = a.scale_y / scale_y, b.scale_y / scale_y
    n = a.n + b.n
    total_weight = a.weight + b.weight
    count = np.where(total_weight > 0, total_weight, 1.0)
    mxa, mxb = a.mean_x * fxa, b.mean_x * fxb
    mya, myb = a.mean_y * fya, b.mean_y * fyb
    delta_x, delta_y = mxb - mxa, myb - mya
    share = b.weight / count
    weight = a.weight * share  # W₁·W₂/W (n₁·n₂/n unweighted)
    cxx_a, cxx_b = a.cxx * fxa * fxa, b.cxx * fxb * fxb
    cxy_a, cxy_b = a.cxy * fxa * fya, b.cxy * fxb * fyb
    cxx = cxx_a + cxx_b + weight * delta_x * delta_x
    cxy = cxy_a + cxy_b + weight * delta_x * delta_y
    cyy = a.cyy * fya * fya + b.cyy * fyb * fyb + weight * delta_y * delta_y
    slope = np.divide(cxy, cxx, out=np.zeros_like(cxy), where=cxx > 0)

    def spread(cxx_k: np.ndarray, cxy_k: np.ndarray) -> np.ndarray:
        """Cxx_k·(β_k − β)²: how far a part's own slope is from the merged one."""
        slope_k = np.divide(cxy_k, cxx_k, out=np.zeros_like(cxy_k), where=cxx_k > 0)
        return cxx_k * np.square(slope_k - slope)

    between = delta_y - slope * delta_x
    rss = (
        a.rss * fya * fya + b.rss * fyb * fyb + spread(cxx_a, cxy_a) + spread(cxx_b, cxy_b) + weight * between * between
    )
    return Moments(
        n=n,
        n_dropped=a.n_dropped + b.n_dropped,
        scale_x=scale_x,
        scale_y=scale_y,
        mean_x=mxa + delta_x * share,
        mean_y=mya + delta_y * share,
        cxx=cxx,
        cxy=cxy,
        cyy=cyy,
        rss=rss,
        min_x=np.minimum(a.min_x, b.min_x),
        max_x=np.maximum(a.max_x, b.max_x),
        min_y=np.minimum(a.min_y, b.min_y),
        max_y=np.maximum(a.max_y, b.max_y),
        weight=total_weight,
        n_pos=a.n_pos + b.n_pos,
    )


def concat(parts: list[Moments]) -> Moments:
    """Stack several :class:`Moments` into one, entries in order."""
    return Moments(*(np.concatenate(fields) for fields in zip(*parts, strict=True)))


def reduce_runs(moments: Moments, run_starts: np.ndarray) -> Moments:
    """Merge each run of consecutive entries into one entry, in a fixed pairwise order.

    Args:
        moments: Entries whose runs belong together (e.g. sorted by dataset, then file).
        run_starts: Increasing start offsets of the runs (the first is 0).

    Returns:
        One entry per run; the same input always gives bit-identical output.
    """
    run_starts = np.asarray(run_starts, dtype=np.int64)
    run_of = np.repeat(np.arange(run_starts.size), np.diff(np.append(run_starts, len(moments))))
    while len(moments) > run_starts.size:
        position = np.arange(len(moments)) - run_starts[run_of]
        has_partner = np.append(run_of[1:] == run_of[:-1], False)
        left = np.flatnonzero((position % 2 == 0) & has_partner)
        merged = merge(moments.take(left), moments.take(left + 1))
        keep = (position % 2 == 0) & ~has_partner  # the odd one out of a run
        survivors = np.sort(np.concatenate([left, np.flatnonzero(keep)]))
        slot = np.searchsorted(survivors, left)
        moments = Moments(
            *(
                _put(field_all[survivors], slot, field_merged)
                for field_all, field_merged in zip(moments, merged, strict=True)
            )
        )
        run_of = run_of[survivors]
        run_starts = np.flatnonzero(np.append(True, run_of[1:] != run_of[:-1]))
    return moments


def _put(values: np.ndarray, slot: np.ndarray, new: np.ndarray) -> np.ndarray:
    values = values.copy()
    values[slot] = new
    return values


class MomentsBuilder:
    """Moments of many owners (datasets) fed as row chunks, in bounded memory.

    Chunks are buffered until about ``flush_rows`` rows are waiting, then reduced to
    one :class:`Moments` entry each with a single vectorized :func:`segment_moments`
    call, so thousands of small files cost a few numpy calls and one huge file never
    sits in memory whole. Owners must be added in increasing order.

    Args:
        flush_rows: Rows buffered before they are reduced to moments.
    """

    def __init__(self, flush_rows: int = 1 << 20) -> None:
        self._flush_rows = flush_rows
        self._x: list[np.ndarray] = []
        self._y: list[np.ndarray] = []
        self._w: list[np.ndarray] = []  # row weights, when the chunks carry them
        self._owners: list[int] = []
        self._buffered = 0
        self._done: list[tuple[np.ndarray, Moments]] = []

    def add(self, owner: int, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Add a chunk of ``owner``'s rows (empty chunks are ignored); weights all or never."""
        if not len(x):
            return
        self._x.append(x)
        self._y.append(y)
        if weights is not None:
            self._w.append(weights)
        self._owners.append(owner)
        self._buffered += len(x)
        if self._buffered >= self._flush_rows:
            self._flush()

    def discard(self, owner: int) -> None:
        """Forget every chunk of ``owner`` added so far (its data turned out unreadable)."""
        keep = [i for i, o in enumerate(self._owners) if o != owner]
        self._x = [self._x[i] for i in keep]
        self._y = [self._y[i] for i in keep]
        self._w = [self._w[i] for i in keep] if self._w else []
        self._owners = [self._owners[i] for i in keep]
        self._buffered = sum(len(x) for x in self._x)
        self._done = [(o[o != owner], m.take(o != owner)) for o, m in self._done]

    def _flush(self) -> None:
        if not self._x:
            return
        starts = np.cumsum([0] + [len(x) for x in self._x[:-1]])
        weights = np.concatenate(self._w) if self._w else None
        moments = segment_moments(np.concatenate(self._x), np.concatenate(self._y), starts, weights)
        self._done.append((np.asarray(self._owners, np.int64), moments))
        self._x, self._y, self._w, self._owners, self._buffered = [], [], [], [], 0

    def result(self, owners: int) -> Moments:
        """Return one entry per owner ``0 .. owners − 1`` (no rows: an empty entry)."""
        self._flush()
        owner = np.concatenate([o for o, _ in self._done] + [np.arange(owners)])
        parts = concat([m for _, m in self._done] + [empty(owners)])
        order = np.argsort(owner, kind="stable")  # each owner's chunks in the order added, then its empty entry
        owner = owner[order]
        self._done = []
        return reduce_runs(parts.take(order), np.flatnonzero(np.append(True, owner[1:] != owner[:-1])))
