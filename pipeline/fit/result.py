"""What one dataset's fit ends as: a status, the numbers, and a one-line reason when it failed."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FitResult", "Status", "failed"]


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
        b: Fitted intercept (exactly 0 without an intercept); ``None`` when failed or diverged.
        final_loss: The minimized objective per unit weight at (w, b), float64, data
            units: the (weighted) mean squared error, or the Huber objective.
        r2: 1 − SSE/SST (uncentred, 1 − SSE/Σcy², without an intercept); ``None`` when
            it is undefined (constant y) or there is no fit.
        steps: Gradient-descent updates applied.
        converged: True only for status ``ok``.
        error: One-line reason when failed, diverged or not converged, else ``None``.
        n_rows: Valid rows used (with weights: finite weight ≥ 0, zero weights included).
        n_dropped: Rows dropped because x, y or the weight was null, NaN, infinite (or negative).
        w_stderr: Standard error of w (squared loss; ``None`` otherwise).
        b_stderr: Standard error of b (squared loss with an intercept; ``None`` otherwise).
        scale: The residual standard error (squared loss) or the fitted Huber scale σ.
        n_outliers: Rows with |r| > ε·σ (Huber loss; ``None`` otherwise).
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
    w_stderr: float | None = None
    b_stderr: float | None = None
    scale: float | None = None
    n_outliers: int | None = None


def failed(error: str, n_rows: int = 0, n_dropped: int = 0, steps: int = 0) -> FitResult:
    """Return a ``failed`` result with no numbers and the given one-line reason."""
    return FitResult(Status.FAILED, error=error, n_rows=n_rows, n_dropped=n_dropped, steps=steps)
