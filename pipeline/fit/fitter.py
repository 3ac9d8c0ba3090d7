"""The line fit: numpy arrays (or their moments) in, :class:`FitResult` out. No Beam here.

``LineFitter`` owns the compiled TensorFlow loop (built once, in its constructor) and
turns raw columns into honest results, many datasets per compiled call:

1. rows whose x, y (or weight) is null, NaN or infinite (or negative) are dropped and
   counted; zero-weight rows carry no information;
2. fewer than two rows with a positive weight, or a constant x (an all-zero x without
   intercept), fail with a one-line reason;
3. with ``standardize`` (default) the loop descends on standardized data
   (:mod:`pipeline.fit.scaling`), where a fixed step converges for every dataset;
   without it, on raw x, y (the textbook loop, squared loss only), and may diverge;
4. the result is mapped back to data units; loss, r², standard errors (squared loss)
   or σ and the outlier count (Huber) are computed in float64
   (:mod:`pipeline.fit.statistics`), and ``ok`` is given only when the float64 gradient
   at the reported parameters is within the tolerance (docs/fit.md). A result that
   cannot be represented as a finite double is a failure, never a wrong number.

Squared loss: ``gram`` fits from moments (O(1) a step), ``rows`` row by row; both land
on the same numbers. Huber: rows only.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pipeline.config.settings import FitConfig
from pipeline.fit.codes import CONVERGED, DIVERGED, STALLED
from pipeline.fit.result import FitResult, Status, failed
from pipeline.fit.scaling import Scaling
from pipeline.fit.statistics import huber_rows, rows_gradient, squared_gradient, squared_statistics
from pipeline.reduce.moments import Moments, segment_moments

__all__ = ["LineFitter"]

# A fixed point of the update is accepted within this many rounding floors (as in the loop).
_FIXED_POINT_SLACK = 8.0
Start = tuple[float, ...] | None


class _Rows(NamedTuple):
    """The standardized rows of several datasets, one after another."""

    u: np.ndarray
    v: np.ndarray
    weight: np.ndarray
    begins: np.ndarray  # where each dataset's rows start
    counts: np.ndarray  # rows with a positive weight per dataset (the floor's summation noise)

    def take(self, datasets: np.ndarray) -> _Rows:
        """The rows of ``datasets`` (increasing indices) only."""
        lengths = np.diff(np.append(self.begins, self.u.size))
        keep = np.repeat(np.isin(np.arange(lengths.size), datasets), lengths)
        begins = np.cumsum(np.append(0, lengths[datasets][:-1]))
        return _Rows(self.u[keep], self.v[keep], self.weight[keep], begins, self.counts[datasets])


def _unfittable(m: Moments, i: int, intercept: bool, weighted: bool) -> str | None:
    """The reason dataset i of ``m`` cannot be fitted at all, or ``None``."""
    n, n_pos, n_dropped = int(m.n[i]), int(m.n_pos[i]), int(m.n_dropped[i])
    if n == 0 and n_dropped == 0:
        return "no rows"
    if n_pos < 2:
        if weighted:
            return (
                f"needs at least 2 rows with finite x and y and a positive weight, found {n_pos} "
                f"({n - n_pos} with weight 0, {n_dropped} dropped as null, NaN, inf or a negative weight)"
            )
        return f"needs at least 2 rows with finite x and y, found {n} ({n_dropped} dropped as null, NaN or inf)"
    low, high = float(m.min_x[i]), float(m.max_x[i])
    among = " with a positive weight" if weighted else ""
    if intercept and low == high:
        return f"x is constant ({low!r} on all {n_pos} rows{among}): the slope is undefined"
    if not intercept and low == high == 0.0:
        return f"x is 0 on all {n_pos} rows{among}: the slope of y = w·x is undefined"
    if not np.isfinite(m.weight[i]):
        return "the weights add up beyond float64's range"
    return None


def _value(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


class LineFitter:
    """Fits lines by gradient descent; build once, fit many batches.

    Constructing a ``LineFitter`` imports TensorFlow and traces the loop lazily on first
    use, so build it where fits run (``DoFn.setup()``), not where pipelines are built.

    Args:
        config: The fit's hyper-parameters.
    """

    def __init__(self, config: FitConfig) -> None:
        from pipeline.fit.descent import Descent  # TensorFlow only where fits run.

        self.config = config
        self._descent = Descent(
            config.dtype, config.learning_rate, config.tolerance, config.max_steps, config.huber_epsilon
        )

    @property
    def trace_count(self) -> int:
        """How many times the compiled loops have been traced (one per loss form used)."""
        return self._descent.trace_count

    @property
    def weighted(self) -> bool:
        """Whether fits take row weights (``--weight_column``)."""
        return self.config.weights is not None

    def fit(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> FitResult:
        """Fit one dataset with the configured loss and loss form.

        Args:
            x: The x column as float64 (nulls as NaN); any length.
            y: The y column, same length.
            weights: Row weights (nulls as NaN), required when the config names a weight column.

        Returns:
            The dataset's result; expected problems (too few rows, constant x,
            divergence, overflow) are statuses, not exceptions.

        Raises:
            ValueError: if the lengths differ, or weights are missing or unexpected.
        """
        x = np.asarray(x, dtype=np.float64).ravel()
        y = np.asarray(y, dtype=np.float64).ravel()
        if x.shape != y.shape or (weights is not None and np.shape(weights) != x.shape):
            raise ValueError(f"x and y differ in length ({x.size} vs {y.size})")
        if (weights is not None) != self.weighted:
            raise ValueError("weights must be given exactly when the config names a weight column")
        data = (x, y) if weights is None else (x, y, np.asarray(weights, np.float64).ravel())
        if self.config.loss_form == "gram":
            if x.size == 0:
                return failed("no rows")
            return self.fit_moments(segment_moments(*data[:2], np.zeros(1, np.int64), *data[2:]))[0]
        return self.fit_rows([data])[0]

    # --- Gram form --------------------------------------------------------------------

    def fit_moments(self, moments: Moments, starts: list[Start] | None = None) -> list[FitResult]:
        """Fit several datasets from their moments in one compiled call (squared loss, ``gram``).

        Args:
            moments: One entry per dataset, complete (all its rows merged).
            starts: Optional ``(w, b)`` per dataset to start from (warm start).

        Returns:
            One result per dataset, in order; each is the same as fitting it alone.
        """
        results, todo = self._screen(moments)
        if not todo.size:
            return results
        m = moments.take(todo)
        s = Scaling.from_moments(m, self.config.intercept)
        begin = self._begin(s, [starts[i] for i in todo.tolist()] if starts else None)
        if self.config.standardize:
            outcome = self._descent.squared_gram(s.quadratic(), begin, s.standardized_frame())
        else:
            outcome = self._descent.squared_gram(s.raw_quadratic(), begin, s.raw_frame())
        for k, result in zip(todo.tolist(), self._squared_results(m, s, outcome), strict=True):
            results[k] = result
        return results

    # --- row form -----------------------------------------------------------------------

    def fit_rows(self, datasets: list[tuple[np.ndarray, ...]], starts: list[Start] | None = None) -> list[FitResult]:
        """Fit several datasets in one compiled call, evaluating the loss row by row.

        Args:
            datasets: ``(x, y)`` (or ``(x, y, weights)``) float64 vectors per dataset.
            starts: Optional ``(w, b)`` (``(w, b, σ)`` for Huber) per dataset to start
                the descent from (warm start); ``None`` entries start cold.

        Returns:
            One result per dataset, in order; each is the same as fitting it alone.
        """
        results: list[FitResult | None] = [None] * len(datasets)
        present = [i for i, d in enumerate(datasets) if len(d[0])]
        for i in set(range(len(datasets))) - set(present):
            results[i] = failed("no rows")
        if not present:
            return results
        columns = [np.concatenate([np.asarray(datasets[i][k], np.float64) for i in present]) for k in (0, 1)]
        lengths = np.array([len(datasets[i][0]) for i in present])
        offsets = np.cumsum(np.append(0, lengths[:-1]))
        weights = np.concatenate([np.asarray(datasets[i][2], np.float64) for i in present]) if self.weighted else None
        moments = segment_moments(*columns, offsets, weights)
        screened, todo = self._screen(moments)
        for k, i in enumerate(present):
            results[i] = screened[k]
        if not todo.size:
            return results
        m = moments.take(todo)
        s = Scaling.from_moments(m, self.config.intercept)
        # the fittable datasets' usable rows (finite, positive weight), concatenated
        owner = np.repeat(np.arange(len(present)), lengths)
        keep = np.isin(owner, todo) & np.isfinite(columns[0]) & np.isfinite(columns[1])
        row_weight = np.ones(columns[0].size) if weights is None else weights
        keep &= np.isfinite(row_weight) & (row_weight > 0)
        segment = np.searchsorted(todo, owner[keep])
        x, y, row_weight = columns[0][keep], columns[1][keep], row_weight[keep]
        begins = np.flatnonzero(np.append(True, segment[1:] != segment[:-1]))
        rows = m.n_pos.astype(np.float64)
        loop_weight = row_weight if self.weighted else None  # unweighted: the loop reads no weights
        chosen = [starts[present[k]] for k in todo.tolist()] if starts else None
        if self.config.loss == "huber":
            fitted = self._huber(m, s, _Rows(*s.rows(x, y, segment), row_weight, begins, rows), chosen)
        else:
            begin = self._begin(s, chosen)
            gradient = None
            if self.config.standardize:
                u, v = s.rows(x, y, segment)
                outcome = self._descent.squared_rows(u, v, loop_weight, begins, begin, s.standardized_frame(rows))
                gradient = rows_gradient(u, v, row_weight, begins, *outcome.params, self.config.intercept)
            else:
                outcome = self._descent.squared_rows(x, y, loop_weight, begins, begin, s.raw_frame(rows))
            fitted = self._squared_results(m, s, outcome, gradient)
        for k, result in zip(todo.tolist(), fitted, strict=True):
            results[present[k]] = result
        return results

    # --- shared -------------------------------------------------------------------------

    def _screen(self, m: Moments) -> tuple[list[FitResult | None], np.ndarray]:
        """Failed results for the unfittable datasets; the indices of the others."""
        results: list[FitResult | None] = [None] * len(m)
        todo = []
        for i in range(len(m)):
            reason = _unfittable(m, i, self.config.intercept, self.weighted)
            if reason:
                results[i] = failed(reason, int(m.n[i]), int(m.n_dropped[i]))
            else:
                todo.append(i)
        return results, np.array(todo, dtype=np.int64)

    def _begin(self, s: Scaling, starts: list[Start] | None) -> tuple[np.ndarray, np.ndarray]:
        """The loop's starting (θ₁, θ₂): zeros, or the warm starts mapped onto the loop's scale."""
        zeros = np.zeros(len(s))
        if not starts:
            return zeros, zeros.copy()
        given = np.array([st is not None for st in starts], dtype=bool)
        w = np.array([st[0] if st else 0.0 for st in starts], dtype=np.float64)
        b = np.array([st[1] if st else 0.0 for st in starts], dtype=np.float64)
        if self.config.standardize:
            w, b = s.to_loop(w, b)
        if not self.config.intercept:
            b = zeros.copy()
        usable = given & np.isfinite(w) & np.isfinite(b)
        return np.where(usable, w, 0.0), np.where(usable, b, 0.0)

    def _squared_results(
        self, m: Moments, s: Scaling, outcome: object, gradient: np.ndarray | None = None
    ) -> list[FitResult]:
        """Results of the squared loss; ``gradient`` is the float64 check where the rows gave it."""
        theta_1, theta_2 = outcome.params
        if self.config.standardize:
            w, b = s.back(theta_1, theta_2)
            away, c = theta_1 - s.target, theta_2
        else:
            w, b = theta_1, theta_2 if self.config.intercept else np.zeros_like(theta_2)
            away, c = s.offset(w, b)
        if gradient is None:
            gradient = squared_gradient(away, c if self.config.intercept else np.zeros_like(c))
        stats = squared_statistics(m, s, w, b)
        return [
            self._result(
                m,
                k,
                outcome,
                w[k],
                b[k],
                stats.final_loss[k],
                gradient[k],
                r2=stats.r2[k],
                w_stderr=stats.w_stderr[k],
                b_stderr=stats.b_stderr[k],
                scale=stats.scale[k],
            )  # fmt: skip
            for k in range(len(s))
        ]

    def _huber(self, m: Moments, s: Scaling, rows: _Rows, starts: list[Start] | None) -> list[FitResult]:
        """Fit the Huber loss; datasets whose rows lie exactly on a line are that line, with σ = 0."""
        exact = s.rest <= 0  # σ → 0 has no positive minimum: the line itself is the answer
        results: list[FitResult | None] = [None] * len(s)
        w, b = s.back(s.target, np.zeros(len(s)), anchored=False)
        r2 = squared_statistics(m, s, w, b).r2
        for k in np.flatnonzero(exact).tolist():
            results[k] = FitResult(
                Status.OK, w=float(w[k]), b=float(b[k]), final_loss=0.0, r2=_value(r2[k]), steps=0, converged=True,
                n_rows=int(m.n[k]), n_dropped=int(m.n_dropped[k]), scale=0.0, n_outliers=0,
            )  # fmt: skip
        todo = np.flatnonzero(~exact)
        if todo.size:
            chosen = [starts[k] for k in todo.tolist()] if starts else None
            fitted = self._huber_descent(m.take(todo), s.take(todo), rows.take(todo), chosen)
            for k, result in zip(todo.tolist(), fitted, strict=True):
                results[k] = result
        return results

    def _huber_descent(self, m: Moments, s: Scaling, rows: _Rows, starts: list[Start] | None) -> list[FitResult]:
        """Run the compiled Huber loop over datasets that are not exactly a line."""
        a0, c0 = s.target.copy(), np.zeros(len(s))  # cold: from the least-squares line
        sigma0 = np.sqrt(s.rest)
        warm = [
            k
            for k, start in enumerate(starts or [])
            if start is not None and len(start) >= 3 and all(np.isfinite(v) for v in start[:3]) and start[2] > 0
        ]
        if warm:  # each dataset's start mapped with its own scaling
            ws, bs = np.zeros(len(s)), np.zeros(len(s))
            ws[warm], bs[warm] = [starts[k][0] for k in warm], [starts[k][1] for k in warm]
            a, c = s.to_loop(ws, bs, anchored=False)
            for k in warm:
                a0[k], c0[k] = a[k], (c[k] if self.config.intercept else 0.0)
                sigma0[k] = starts[k][2] / (s.spread_y[k] * s.scale_y[k])
        frame = s.standardized_frame(rows.counts)
        loop_weight = rows.weight if self.weighted else None  # unweighted: the loop reads no weights
        outcome = self._descent.huber(rows.u, rows.v, loop_weight, rows.begins, (a0, c0, sigma0), frame)
        a, c, sigma = outcome.params
        collapsing = sigma < 1e-6 * sigma0
        w, b = s.back(a, c, anchored=False)
        figures = huber_rows(
            rows.u, rows.v, rows.weight, rows.begins, (a, c, sigma), self.config.huber_epsilon, self.config.intercept
        )
        stats = squared_statistics(m, s, w, b)
        data_scale = s.spread_y * s.scale_y
        return [
            self._result(
                m,
                k,
                outcome,
                w[k],
                b[k],
                figures.loss[k] * data_scale[k],
                figures.gradient[k],
                r2=stats.r2[k],
                scale=sigma[k] * data_scale[k],
                n_outliers=int(figures.outliers[k]),
                collapsing=bool(collapsing[k]),
            )  # fmt: skip
            for k in range(len(s))
        ]

    def _result(
        self, m: Moments, k: int, outcome: object, w: float, b: float, loss: float, gradient: float, **extra: object
    ) -> FitResult:
        """One dataset's result: its status from the loop's code and the float64 gradient check."""
        code, steps = int(outcome.code[k]), int(outcome.steps[k])
        n, n_dropped = int(m.n[k]), int(m.n_dropped[k])
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
        collapsing = extra.pop("collapsing", False)
        tolerance = self.config.tolerance
        floor = float(outcome.floor[k])
        allowed = max(tolerance, _FIXED_POINT_SLACK * floor)
        converged = bool(code == CONVERGED and gradient <= allowed)
        error = None
        if not converged:
            error = self._why_not(code, steps, gradient, float(outcome.gradient[k]), max(tolerance, floor), collapsing)
        numbers = {k: _value(v) if isinstance(v, float | np.floating) else v for k, v in extra.items()}
        return FitResult(
            Status.OK if converged else Status.NOT_CONVERGED,
            w=float(w),
            b=float(b),
            final_loss=float(loss),
            steps=steps,
            converged=converged,
            error=error,
            n_rows=n,
            n_dropped=n_dropped,
            **numbers,
        )

    def _why_not(
        self, code: int, steps: int, gradient: float, loop_gradient: float, target: float, collapsing: bool
    ) -> str:
        """The one-line reason a fit ended ``not_converged``."""
        where = f"‖∇L‖ = {gradient:.3g} > {target:.3g}"
        if code == STALLED and self.config.loss == "huber":  # the damped step shrank to nothing
            return (
                f"stalled after {steps} step(s): no step lowers the loss at {self.config.dtype} precision while {where}"
            )
        if code == STALLED:
            return (
                f"stalled after {steps} step(s): the update no longer changes the parameters at "
                f"{self.config.dtype} precision while {where} (use --standardize or a larger --learning_rate)"
            )
        if code == CONVERGED:
            return f"the loop's own gradient reached {loop_gradient:.3g}, but in float64 {where}"
        if collapsing:
            return (
                f"max_steps {self.config.max_steps} reached with {where}: σ keeps shrinking toward 0 "
                "(the inlier rows lie exactly on a line, so the Huber scale has no positive minimum)"
            )
        return f"max_steps {self.config.max_steps} reached with {where}"
