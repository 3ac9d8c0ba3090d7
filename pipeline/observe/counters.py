"""tapefit's Beam metrics, all under one namespace, gathered in one small collector.

Counters: ``datasets_<status>``, ``rows_read``, ``rows_used``, ``rows_dropped``,
``null_key_rows``, ``datasets_reused``; distributions: ``steps`` and ``fit_us``. The
collector also ticks the local progress line (:mod:`pipeline.observe.progress`).
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
from apache_beam.metrics import Metrics

from pipeline.fit.result import Status
from pipeline.observe.progress import ProgressTicker

__all__ = ["NAMESPACE", "Counters"]

NAMESPACE = "tapefit"


class Counters:
    """tapefit's Beam metrics, all under one namespace."""

    def __init__(self) -> None:
        self.statuses = {status: Metrics.counter(NAMESPACE, f"datasets_{status}") for status in Status.ALL}
        self.rows_used = Metrics.counter(NAMESPACE, "rows_used")
        self.rows_dropped = Metrics.counter(NAMESPACE, "rows_dropped")
        self.rows_read = Metrics.counter(NAMESPACE, "rows_read")
        self.steps = Metrics.distribution(NAMESPACE, "steps")
        self.fit_us = Metrics.distribution(NAMESPACE, "fit_us")
        self.progress = ProgressTicker.from_environment()

    def count(self, table: pa.Table, fit_seconds: float | None = None) -> None:
        """Count a table of output rows; ``fit_seconds`` is the batch's fit time, shared per dataset."""
        statuses = table.column("status").to_pylist()
        for status, count in Counter(statuses).items():
            self.statuses[status].inc(count)
        fitted = [s != Status.FAILED for s in statuses]
        n_rows = table.column("n_rows").to_pylist()
        n_dropped = sum(table.column("n_dropped").to_pylist())
        self.rows_used.inc(sum(n for n, f in zip(n_rows, fitted, strict=True) if f))
        self.rows_dropped.inc(n_dropped)
        self.rows_read.inc(sum(n_rows) + n_dropped)
        for steps, f in zip(table.column("steps").to_pylist(), fitted, strict=True):
            if f:
                self.steps.update(steps)
        if fit_seconds is not None and table.num_rows:
            each = round(fit_seconds * 1e6 / table.num_rows)
            for _ in range(table.num_rows):
                self.fit_us.update(each)
        self.progress.tick(table.num_rows)
