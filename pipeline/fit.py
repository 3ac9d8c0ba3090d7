"""The line fit: numpy arrays in, one :class:`FitResult` out. No Beam here.

``LineFitter`` owns the compiled TensorFlow loop (built once, in its constructor) and
turns raw x, y columns into an honest result:

1. rows whose x or y is null, NaN or infinite are dropped and counted;
2. fewer than two rows, or a constant x, fail with a one-line reason;
3. with ``standardize`` (default) the loop descends on u = (x − μx)/σx and
   v = (y − μy)/σy, where the loss's Hessian is 2·I so a fixed η converges for every
   dataset; the result is mapped back with w = a·σy/σx, b = μy + σy·c − w·μx;
4. without it, the loop descends on raw x, y (the textbook form) and may diverge;
5. ``final_loss`` and ``r2`` are recomputed in float64 in the data's own units, and
   any result that cannot be represented as a finite double is a failure, never a
   silently wrong number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.options import FitConfig

__all__ = ["FitResult", "LineFitter", "Status", "failed"]


class Status:
    """The four outcomes a dataset can have."""

    OK = "ok"
    NOT_CONVERGED = "not_converged"
    DIVERGED = "diverged"
    FAILED = "failed"
    ALL = (OK, NOT_CONVERGED, DIVERGED, FAILED)


@dataclass(frozen=True)
class FitResult:
    """The outcome of fitting one dataset.

    Attributes:
        status: One of :class:`Status`.
        w: Fitted slope; ``None`` when failed or diverged.
        b: Fitted intercept; ``None`` when failed or diverged.
        final_loss: mean((w·x + b − y)²) over the valid rows, float64, data units.
        r2: 1 − SSE/SST; ``None`` when y is constant or there is no fit.
        steps: Gradient-descent updates applied.
        converged: True only for status ``ok``.
        error: One-line reason when failed or diverged, else ``None``.
        n_rows: Valid rows used.
        n_dropped: Rows dropped because x or y was null, NaN or infinite.
    """

    status: str
    w: float | None = None
    b: float | None = None
    final_loss: float | None = None
    r2: float | None = None
    steps: int = 0
    converged: bool = False
    error: str | None = None
    n_rows: int = 0
    n_dropped: int = 0


def failed(error: str, n_rows: int = 0, n_dropped: int = 0, steps: int = 0) -> FitResult:
    """Return a ``failed`` result with no numbers and the given one-line reason."""
    return FitResult(Status.FAILED, error=error, n_rows=n_rows, n_dropped=n_dropped, steps=steps)


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


class LineFitter:
    """Fits y = w·x + b by gradient descent; build once, call :meth:`fit` many times.

    Constructing a ``LineFitter`` imports TensorFlow and traces the loop, so build it
    where fits run (``DoFn.setup()``), not where pipelines are constructed.

    Args:
        config: The fit's hyper-parameters.
    """

    def __init__(self, config: FitConfig) -> None:
        from pipeline.descent import build_descent  # TensorFlow only where fits run.

        self.config = config
        self._descend = build_descent(config.dtype, config.learning_rate, config.tolerance, config.max_steps)

    @property
    def trace_count(self) -> int:
        """How many times the compiled loop has been traced (1 after the first fit)."""
        return self._descend.trace_count()

    def fit(self, x: np.ndarray, y: np.ndarray) -> FitResult:
        """Fit one dataset.

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
        valid = np.isfinite(x) & np.isfinite(y)
        n_dropped = int(x.size - np.count_nonzero(valid))
        if n_dropped:
            x, y = x[valid], y[valid]
        n = int(x.size)
        if n < 2:
            if n == 0 and n_dropped == 0:
                return failed("no rows", n, n_dropped)
            return failed(
                f"needs at least 2 rows with finite x and y, found {n} ({n_dropped} dropped as null, NaN or inf)",
                n,
                n_dropped,
            )
        if x.min() == x.max():
            return failed(f"x is constant ({float(x[0])!r} on all {n} rows): the slope is undefined", n, n_dropped)
        constant_y = y.min() == y.max()
        if constant_y:  # v = 0 everywhere and σy is taken as 1
            mean_y, std_y, scale_y = float(y[0]), 1.0, 1.0
        else:
            mean_y, std_y, scale_y = _location_scale(y)
        mu_y, sigma_y = mean_y * scale_y, std_y * scale_y
        spread_y = None if constant_y else sigma_y
        if not self.config.standardize:
            return self._finish(x, y, self._descend(x, y), 1.0, 0.0, 0.0, 1.0, spread_y, n_dropped)
        mean_x, std_x, scale_x = _location_scale(x)
        u = (x / scale_x - mean_x) / std_x
        v = np.zeros_like(y) if constant_y else (y / scale_y - mean_y) / std_y
        outcome = self._descend(u, v)
        slope_ratio = sigma_y / (std_x * scale_x)
        return self._finish(x, y, outcome, slope_ratio, mean_x * scale_x, mu_y, sigma_y, spread_y, n_dropped)

    def _finish(
        self,
        x: np.ndarray,
        y: np.ndarray,
        outcome,  # noqa: ANN001 (descent.DescentOutcome; not imported to keep TF lazy)
        slope_ratio: float,
        mu_x: float,
        mu_y: float,
        sigma_y: float,
        spread_y: float | None,
        n_dropped: int,
    ) -> FitResult:
        """Map the loop's (a, c) back to (w, b) and measure the fit in data units.

        w = a·slope_ratio and b = μy + σy·c − w·μx; the raw loop passes the identity map
        (``slope_ratio=1, mu_x=mu_y=0, sigma_y=1``). ``spread_y`` is y's population
        standard deviation (``None`` for constant y), the denominator of r².
        """
        from pipeline.descent import CONVERGED, DIVERGED  # already imported by __init__

        n = int(x.size)
        if outcome.code == DIVERGED:
            return FitResult(
                Status.DIVERGED,
                steps=outcome.steps,
                n_rows=n,
                n_dropped=n_dropped,
                error=(
                    f"loss grew without bound after {outcome.steps} step(s): learning rate "
                    f"{self.config.learning_rate:g} is too large for this data's scale "
                    "(use --standardize or a smaller --learning_rate)"
                ),
            )
        with np.errstate(over="ignore", invalid="ignore"):
            w = outcome.w * slope_ratio
            b = mu_y + sigma_y * outcome.b - w * mu_x
            residuals = (w * x + b) - y
            final_loss = _mean_square(residuals) if np.all(np.isfinite(residuals)) else np.inf
        if not (np.isfinite(w) and np.isfinite(b) and np.isfinite(final_loss)):
            return failed(
                "values too large: the fitted line or its squared error overflows float64",
                n,
                n_dropped,
                outcome.steps,
            )
        r2 = None if spread_y is None else 1.0 - (np.sqrt(final_loss) / spread_y) ** 2
        converged = outcome.code == CONVERGED
        return FitResult(
            Status.OK if converged else Status.NOT_CONVERGED,
            w=float(w),
            b=float(b),
            final_loss=float(final_loss),
            r2=None if r2 is None else float(r2),
            steps=outcome.steps,
            converged=converged,
            n_rows=n,
            n_dropped=n_dropped,
        )
