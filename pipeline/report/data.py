"""What a report shows, computed from a partition's rows (no plotting, no Beam, no TensorFlow).

Counts per status, wall time, the problem datasets and their reasons, which datasets
get a scatter panel, and the comparison with the previous partition.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
from collections import Counter
from dataclasses import dataclass

__all__ = [
    "PROBLEM_STATUSES",
    "STATUSES",
    "Change",
    "Comparison",
    "FitModel",
    "compare",
    "error_reasons",
    "explain",
    "pick_panels",
    "problems",
    "relative_change",
    "status_counts",
    "wall_time",
]

STATUSES = ("ok", "not_converged", "diverged", "failed")
PROBLEM_STATUSES = ("failed", "diverged", "not_converged")


@dataclass(frozen=True)
class FitModel:
    """What was fitted, as the manifest's ``options.fit`` records it.

    A manifest written before robust and weighted fits existed lacks these keys: its
    fits were least squares, unweighted, with an intercept, which are the defaults.

    Attributes:
        loss: ``"squared"`` or ``"huber"``.
        epsilon: Huber's ε (residuals beyond ε·σ count linearly).
        intercept: Whether b was fitted (False: y = w·x, b exactly 0).
        weights: The row-weight column, or None when every row weighs 1.
    """

    loss: str = "squared"
    epsilon: float = 1.35
    intercept: bool = True
    weights: str | None = None

    @classmethod
    def from_manifest(cls, manifest: dict | None) -> FitModel:
        """The fit of a partition, from its manifest (the defaults when it records nothing)."""
        fit = ((manifest or {}).get("options") or {}).get("fit") or {}
        epsilon = fit.get("huber_epsilon")
        return cls(
            loss=str(fit.get("loss") or "squared"),
            epsilon=float(epsilon) if isinstance(epsilon, int | float) else cls.epsilon,
            intercept=fit.get("intercept") is not False,
            weights=fit.get("weights") or None,
        )

    @property
    def exact(self) -> bool:
        """Whether the fit has a closed form (least squares) that the descent should land on."""
        return self.loss == "squared"

    @property
    def reference(self) -> str:
        """What the report's dashed line is: the fit's closed form, or least squares to compare with."""
        if not self.exact:
            return "least squares, for comparison"
        kind = "weighted least squares" if self.weights else "least squares"
        return kind + ("" if self.intercept else " through the origin")

    def describe_loss(self) -> str:
        """The loss in words, for the report's facts."""
        if self.loss == "squared":
            return "squared (least squares)"
        if self.loss == "huber":
            return f"huber, ε = {self.epsilon:g} (σ estimated jointly)"
        return self.loss

    def describe_weights(self) -> str:
        """The row weights in words."""
        return f"column {self.weights!r}" if self.weights else "none: every row weighs 1"

    def describe_model(self) -> str:
        """The fitted model in words."""
        return "y = w·x + b" if self.intercept else "y = w·x, through the origin (b = 0)"

    def differences(self, previous: FitModel) -> str:
        """What changed from ``previous`` to this fit, in words ("" when nothing did)."""
        changed = [
            f"{name} {before} → {now}"
            for name, before, now in (
                ("loss", previous.describe_loss(), self.describe_loss()),
                ("weights", previous.describe_weights(), self.describe_weights()),
                ("model", previous.describe_model(), self.describe_model()),
            )
            if before != now
        ]
        return "; ".join(changed)


def status_counts(rows: list[dict]) -> dict[str, int]:
    """Return the number of rows per status, every known status present (0 if none)."""
    counts = Counter(row["status"] for row in rows)
    return {status: counts.get(status, 0) for status in STATUSES} | {
        status: count for status, count in counts.items() if status not in STATUSES
    }


def wall_time(manifest: dict | None, rows: list[dict]) -> tuple[float | None, str]:
    """Return the run's wall time in seconds and where the number comes from.

    The manifest's ``started_at`` (launch) to ``finished_at`` (commit) is the run's wall
    time. Without it, the first to the last row's ``fitted_at`` is a lower bound.

    Returns:
        ``(seconds, how)``; seconds is None when nothing records a time.
    """
    try:
        started = dt.datetime.fromisoformat(manifest["started_at"])
        finished = dt.datetime.fromisoformat(manifest["finished_at"])
        return (finished - started).total_seconds(), "launch to commit, from _manifest.json"
    except (TypeError, KeyError, ValueError):
        pass
    stamps = [row["fitted_at"] for row in rows if row.get("fitted_at") is not None]
    if len(stamps) < 2:
        return None, "not recorded"
    return (max(stamps) - min(stamps)).total_seconds(), "at least: first to last row's fitted_at (no manifest times)"


def problems(rows: list[dict]) -> list[dict]:
    """Return the failed, diverged and not-converged rows, in that order, then by dataset."""
    rank = {status: i for i, status in enumerate(PROBLEM_STATUSES)}
    return sorted((row for row in rows if row["status"] in rank), key=lambda r: (rank[r["status"]], r["dataset"]))


def explain(row: dict) -> str:
    """The row's error, or for a ``not_converged`` row (which has none) what happened."""
    if row["error"]:
        return row["error"]
    if row["status"] == "not_converged":
        return f"reached max_steps ({row['steps']:,}) before the gradient met the tolerance; w, b are the last step's"
    return ""


def _reason(error: str) -> str:
    """An error message without its particulars: the part before ``:`` or ``(``, numbers as N."""
    text = re.split(r"[:(;]", error or "no message", maxsplit=1)[0].strip() or error.strip()
    return re.sub(r"\d[\d,]*(\.\d+)?", "N", text)


def error_reasons(rows: list[dict]) -> list[tuple[str, str, int]]:
    """Return ``(status, reason, count)`` for the problem rows, most frequent first."""
    counts = Counter((row["status"], _reason(explain(row))) for row in problems(rows))
    return sorted(((status, reason, n) for (status, reason), n in counts.items()), key=lambda t: (-t[2], t[0], t[1]))


def pick_panels(rows: list[dict], count: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Choose the datasets shown as scatter panels.

    Args:
        rows: The partition's rows.
        count: How many of each kind.
        seed: Seed of the random choice, so a report is reproducible.

    Returns:
        The ``count`` worst fits by r² (lowest first; any status that reports r²) and
        ``count`` random ``ok`` datasets among the others (sorted by id).
    """
    rated = sorted((row for row in rows if row["r2"] is not None), key=lambda r: (r["r2"], r["dataset"]))
    worst = rated[:count]
    taken = {row["dataset"] for row in worst}
    ok = [row for row in rows if row["status"] == "ok" and row["dataset"] not in taken]
    chosen = random.Random(seed).sample(ok, min(count, len(ok)))
    return worst, sorted(chosen, key=lambda row: row["dataset"])


def relative_change(old: float | None, new: float | None) -> float | None:
    """Return ``|new − old| / |old|`` (``inf`` from 0 to non-zero), or None if either is missing."""
    if old is None or new is None:
        return None
    delta = abs(new - old)
    if delta == 0:
        return 0.0
    return delta / abs(old) if old != 0 else math.inf


@dataclass(frozen=True)
class Change:
    """One dataset present in both partitions.

    Attributes:
        dataset: The dataset id.
        old: Its row in the previous partition.
        new: Its row in this partition.
        rel_w: Relative change of w (see :func:`relative_change`), None if either is missing.
        rel_b: Relative change of b, likewise.
    """

    dataset: str
    old: dict
    new: dict
    rel_w: float | None
    rel_b: float | None

    @property
    def largest(self) -> float:
        """The larger of the two relative changes (0 when neither is known)."""
        return max((value for value in (self.rel_w, self.rel_b) if value is not None), default=0.0)


@dataclass(frozen=True)
class Comparison:
    """This partition against the previous one of the same table.

    Attributes:
        previous_date: The previous partition's run date.
        previous_run_id: Its run id (from its manifest or rows), or None.
        threshold: Relative change of w or b above which a dataset counts as moved.
        moved: Datasets whose w or b moved by more than the threshold, largest first.
        status_changed: Datasets whose status differs, by dataset id.
        new: Dataset ids only in this partition, sorted.
        gone: Dataset ids only in the previous partition, sorted.
        common: How many datasets are in both.
        fit_change: How the previous run's fit differs from this one's (loss, weights,
            model), so its w, b are not like for like; "" when it is the same fit.
    """

    previous_date: str
    previous_run_id: str | None
    threshold: float
    moved: list[Change]
    status_changed: list[Change]
    new: list[str]
    gone: list[str]
    common: int
    fit_change: str = ""


def compare(
    rows: list[dict], previous_rows: list[dict], previous_date: str, previous_run_id: str | None, threshold: float
) -> Comparison:
    """Compare a partition's rows with the previous partition's.

    Args:
        rows: This partition's rows.
        previous_rows: The previous partition's rows.
        previous_date: The previous partition's run date.
        previous_run_id: The previous run's id, if known.
        threshold: Relative change of w or b above which a dataset counts as moved.

    Returns:
        The comparison.
    """
    now = {row["dataset"]: row for row in rows}
    before = {row["dataset"]: row for row in previous_rows}
    changes = [
        Change(name, before[name], now[name], *(relative_change(before[name][p], now[name][p]) for p in ("w", "b")))
        for name in sorted(now.keys() & before.keys())
    ]
    moved = sorted((c for c in changes if c.largest > threshold), key=lambda c: (-c.largest, c.dataset))
    return Comparison(
        previous_date=previous_date,
        previous_run_id=previous_run_id,
        threshold=threshold,
        moved=moved,
        status_changed=[c for c in changes if c.old["status"] != c.new["status"]],
        new=sorted(now.keys() - before.keys()),
        gone=sorted(before.keys() - now.keys()),
        common=len(changes),
    )
