"""The line fit: numpy arrays (or their moments) in, :class:`FitResult` out. No Beam here.

``LineFitter`` owns the compiled TensorFlow loop (built once, in its constructor) and
turns raw x, y columns into honest results, many datasets per compiled call:

1. rows whose x or y is null, NaN or infinite are dropped and counted;
2. fewer than two rows, or a constant x, fail with a one-line reason;
3. with ``standardize`` (default) the loop descends on u = (x − μx)/σx and
   v = (y − μy)/σy, where the loss's Hessian is 2·I so a fixed η converges for every
   dataset; the result is mapped back with w = a·σy/σx, b = μy + σy·c − w·μx;
4. without it, the loop descends on raw x, y (the textbook form) and may diverge;
5. ``final_loss`` and ``r2`` are recomputed in float64 in the data's own units, and
   any result that cannot be represented as a finite double is a failure, never a
   silently wrong number.

The loss is the same quadratic in both loss forms: ``rows`` evaluates it over
the rows, ``gram`` from the dataset's :class:`~pipeline.reduce.moments.Moments` (O(1) a step,
and the moments can be accumulated a file or row group at a time).
"""

from __future__ import annotations

import numpy as np

from pipeline.config.settings import FitConfig
from pipeline.fit.result import FitResult, Status, failed
from pipeline.reduce.moments import Moments, segment_moments

__all__ = ["LineFitter"]


def _location_scale(values: np.ndarray) -> tuple[float, float, float]:
    """Return (μ, σ, s) of ``values`` computed on values / s, with s = max |value|.

    Working on values / s keeps every square in range, so μ and σ (population) are
    right even when the squares of the raw values would overflow float64. The mean is
    refined once (two-pass) so that data far from zero keeps its digits.
    """
    scale = float(np.max(np.abs(values)))
    if scale == 0.0:
        return 0.0, 0.0, 1.0
    scaled = values / scale
    mean = np.mean(scaled)
    mean += np.mean(scaled - mean)
    std = np.sqrt(np.mean(np.square(scaled - mean)))
    return float(mean), float(std), scale


def _mean_square(residuals: np.ndarray) -> float:
    """mean(r²) in float64; scaled when the plain sum of squares would overflow."""
    value = float(np.mean(np.square(residuals)))
    if not np.isfinite(value):
        peak = float(np.max(np.abs(residuals)))
        value = peak * peak * float(np.mean(np.square(residuals / peak)))
    return value


def _unfittable(n: int, n_dropped: int, min_x: float, max_x: float) -> str | None:
    """The reason a dataset cannot be fitted at all, or ``None``."""
    if n < 2:
        if n == 0 and n_dropped == 0:
            return "no rows"
        return f"needs at least 2 rows with finite x and y, found {n} ({n_dropped} dropped as null, NaN or inf)"
    if min_x == max_x:
        return f"x is constant ({float(min_x)!r} on all {n} rows): the slope is undefined"
    return None


def _loop_starts(
    starts: list[tuple[float, float] | None],
    ratio: np.ndarray,
    shift_x: np.ndarray,
    shift_y: np.ndarray,
    stretch_y: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Map warm-start (w, b) in data units onto the loop's scale: the inverse of the map back.

    The loop's (a, c) map back as w = a·ratio and b = shift_y + stretch_y·c − w·shift_x;
    missing or non-finite starts become (0, 0).
    """
    w = np.array([s[0] if s else 0.0 for s in starts], dtype=np.float64)
    b = np.array([s[1] if s else 0.0 for s in starts], dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        a = w / ratio
        c = (b + w * shift_x - shift_y) / stretch_y
    usable = np.isfinite(a) & np.isfinite(c) & np.array([s is not None for s in starts], dtype=bool)
    return np.where(usable, a, 0.0), np.where(usable, c, 0.0)


class LineFitter:
    """Fits y = w·x + b by gradient descent; build once, fit many batches.

    Constructing a ``LineFitter`` imports TensorFlow and traces the loop, so build it
    where fits run (``DoFn.setup()``), not where pipelines are constructed.

    Args:
        config: The fit's hyper-parameters.
    """

    def __init__(self, config: FitConfig) -> None:
        from pipeline.fit.descent import Descent  # TensorFlow only where fits run.

        self.config = config
        self._descent = Descent(config.dtype, config.learning_rate, config.tolerance, config.max_steps)

    @property
    def trace_count(self) -> int:
        """How many times the compiled loops have been traced (one per loss form used)."""
        return self._descent.trace_count

    def fit(self, x: np.ndarray, y: np.ndarray) -> FitResult:
        """Fit one dataset with the configured ``loss_form``.

        Args:
            x: The x column as float64 (nulls as NaN); any length.
            y: The y column, same length.

        Returns:
            The dataset's result; expected problems (too few rows, constant x,
            divergence, overflow) are statuses, not exceptions.

        Raises:
            ValueError: if x and y differ in length.
        """
        x = np.asarray(x, dtype=np.float64).ravel()
        y = np.asarray(y, dtype=np.float64).ravel()
        if x.shape != y.shape:
            raise ValueError(f"x and y differ in length ({x.size} vs {y.size})")
        if self.config.loss_form == "gram":
            if x.size == 0:
                return failed("no rows")
            return self.fit_moments(segment_moments(x, y, np.zeros(1, np.int64)))[0]
        return self.fit_rows([(x, y)])[0]

    def fit_rows(
        self, datasets: list[tuple[np.ndarray, np.ndarray]], starts: list[tuple[float, float] | None] | None = None
    ) -> list[FitResult]:
        """Fit several datasets in one compiled call, evaluating the loss row by row.

        Args:
            datasets: ``(x, y)`` float64 vectors of equal length per dataset.
            starts: Optional ``(w, b)`` per dataset to start the descent from (warm
                start); ``None`` entries start from (0, 0).

        Returns:
            One result per dataset, in order; each is the same as fitting it alone.
        """
        results: list[FitResult | None] = [None] * len(datasets)
        pending = []
        for i, (x, y) in enumerate(datasets):
            x = np.asarray(x, dtype=np.float64)
            y = np.asarray(y, dtype=np.float64)
            valid = np.isfinite(x) & np.isfinite(y)
            n_dropped = int(x.size - np.count_nonzero(valid))
            if n_dropped:
                x, y = x[valid], y[valid]
            reason = _unfittable(int(x.size), n_dropped, *(x.min(), x.max()) if x.size else (0.0, 0.0))
            if reason:
                results[i] = failed(reason, int(x.size), n_dropped)
                continue
            pending.append((i, x, y, n_dropped, self._scaling(x, y)))
        if not pending:
            return results
        loop_x = [u for _, _, _, _, (u, _, *_) in pending]
        loop_y = [v for _, _, _, _, (_, v, *_) in pending]
        offsets = np.cumsum([0] + [u.size for u in loop_x[:-1]])
        w0, b0 = _loop_starts(
            [starts[i] if starts else None for i, *_ in pending],
            *(np.array([p[4][k] for p in pending]) for k in (2, 3, 4, 5)),
        )
        outcome = self._descent.rows(np.concatenate(loop_x), np.concatenate(loop_y), offsets, w0, b0)
        for k, (i, x, y, n_dropped, (_, _, slope_ratio, mu_x, mu_y, sigma_y, spread_y)) in enumerate(pending):
            w = outcome.w[k] * slope_ratio
            b = mu_y + sigma_y * outcome.b[k] - w * mu_x
            with np.errstate(over="ignore", invalid="ignore"):
                residuals = (w * x + b) - y
                loss = _mean_square(residuals) if np.all(np.isfinite(residuals)) else np.inf
            results[i] = self._result(
                int(outcome.code[k]), int(outcome.steps[k]), w, b, loss, spread_y, int(x.size), n_dropped
            )
        return results

    def _scaling(self, x: np.ndarray, y: np.ndarray) -> tuple:
        """The loop's inputs and the map back: (u, v, slope_ratio, μx, μy, σy, spread_y)."""
        constant_y = y.min() == y.max()
        if constant_y:  # v = 0 everywhere and σy is taken as 1
            mean_y, std_y, scale_y = float(y[0]), 1.0, 1.0
        else:
            mean_y, std_y, scale_y = _location_scale(y)
        mu_y, sigma_y = mean_y * scale_y, std_y * scale_y
        spread_y = None if constant_y else sigma_y
        if not self.config.standardize:
            return x, y, 1.0, 0.0, 0.0, 1.0, spread_y
        mean_x, std_x, scale_x = _location_scale(x)
        u = (x / scale_x - mean_x) / std_x
        v = np.zeros_like(y) if constant_y else (y / scale_y - mean_y) / std_y
        return u, v, sigma_y / (std_x * scale_x), mean_x * scale_x, mu_y, sigma_y, spread_y

    def fit_moments(self, moments: Moments, starts: list[tuple[float, float] | None] | None = None) -> list[FitResult]:
        """Fit several datasets from their moments in one compiled call (``gram`` form).

        The loop follows the same trajectory as the row-wise loss (same quadratic);
        ``final_loss`` is computed from the moments without cancellation.

        Args:
            moments: One entry per dataset, complete (all its rows merged).
            starts: Optional ``(w, b)`` per dataset to start from (warm start).

        Returns:
            One result per dataset, in order; each is the same as fitting it alone.
        """
        m = moments
        n, n_dropped = m.n.tolist(), m.n_dropped.tolist()
        results: list[FitResult | None] = [None] * len(m)
        reasons = [
            _unfittable(n[i], n_dropped[i], lo, hi)
            for i, (lo, hi) in enumerate(zip(m.min_x.tolist(), m.max_x.tolist(), strict=True))
        ]
        for i, reason in enumerate(reasons):
            if reason:
                results[i] = failed(reason, n[i], n_dropped[i])
        todo = np.array([i for i, reason in enumerate(reasons) if reason is None], dtype=np.int64)
        if not todo.size:
            return results
        m = m.take(todo)
        count = m.n.astype(np.float64)
        constant_y = m.min_y == m.max_y
        cyy = np.where(constant_y, 1.0, m.cyy)
        slope = m.cxy / m.cxx  # least-squares slope, scaled units
        sigma_x = m.scale_x * np.sqrt(m.cxx / count)
        spread_y = m.scale_y * np.sqrt(cyy / count)
        sigma_y = np.where(constant_y, 1.0, spread_y)
        mu_x = m.mean_x * m.scale_x
        mu_y = np.where(constant_y, m.min_y, m.mean_y * m.scale_y)
        ones, zeros = np.ones(todo.size), np.zeros(todo.size)
        if self.config.standardize:
            ratio, shift_x, shift_y, stretch_y = sigma_y / sigma_x, mu_x, mu_y, sigma_y
            correlation = np.where(constant_y, 0.0, m.cxy / np.sqrt(m.cxx) / np.sqrt(cyy))
            quadratic = (np.where(constant_y, 0.0, m.rss / cyy), ones, correlation, zeros, zeros)
        else:
            ratio, shift_x, shift_y, stretch_y = ones, zeros, zeros, ones
            with np.errstate(over="ignore", invalid="ignore"):
                quadratic = (
                    m.rss * m.scale_y**2 / count,
                    m.cxx * m.scale_x**2 / count,
                    slope * (m.scale_y / m.scale_x),
                    mu_x,
                    mu_y,
                )
        w0, b0 = _loop_starts(
            [starts[i] for i in todo.tolist()] if starts else [None] * todo.size, ratio, shift_x, shift_y, stretch_y
        )
        outcome = self._descent.gram(*quadratic, w0, b0)
        with np.errstate(over="ignore", invalid="ignore"):
            w = outcome.w * ratio
            b = shift_y + stretch_y * outcome.b - w * shift_x
            # mean squared error in data units: scale_y² · (R + Cxx(w' − β)² + n(w'x̄ + b' − ȳ)²) / n
            w_scaled, b_scaled = w * (m.scale_x / m.scale_y), b / m.scale_y
            offset = w_scaled * m.mean_x + b_scaled - m.mean_y
            mean_square = (m.rss + m.cxx * np.square(w_scaled - slope)) / count + np.square(offset)
            loss = np.square(m.scale_y * np.sqrt(mean_square))
        for k, i in enumerate(todo.tolist()):
            spread = None if constant_y[k] else float(spread_y[k])
            results[i] = self._result(
                int(outcome.code[k]), int(outcome.steps[k]), w[k], b[k], loss[k], spread, n[i], n_dropped[i]
            )
        return results

    def _result(
        self, code: int, steps: int, w: float, b: float, loss: float, spread_y: float | None, n: int, n_dropped: int
    ) -> FitResult:
        """One dataset's result from the loop's outcome mapped back to data units.

        ``spread_y`` is y's population standard deviation (``None`` for constant y),
        the denominator of r².
        """
        from pipeline.fit.descent import CONVERGED, DIVERGED  # already imported by __init__

        if code == DIVERGED:
            return FitResult(
                Status.DIVERGED,
                steps=steps,
                n_rows=n,
                n_dropped=n_dropped,
                error=(
                    f"loss grew without bound after {steps} step(s): learning rate "
                    f"{self.config.learning_rate:g} is too large for this data's scale "
                    "(use --standardize or a smaller --learning_rate)"
                ),
            )
        if not (np.isfinite(w) and np.isfinite(b) and np.isfinite(loss)):
            return failed(
                "values too large: the fitted line or its squared error overflows float64", n, n_dropped, steps
            )
        r2 = None if spread_y is None else 1.0 - (np.sqrt(loss) / spread_y) ** 2
        converged = code == CONVERGED
        return FitResult(
            Status.OK if converged else Status.NOT_CONVERGED,
            w=float(w),
            b=float(b),
            final_loss=float(loss),
            r2=None if r2 is None else float(r2),
            steps=steps,
            converged=converged,
            n_rows=n,
            n_dropped=n_dropped,
        )
