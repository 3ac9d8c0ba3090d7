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
