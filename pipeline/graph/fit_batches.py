"""The fit stage in Beam: :class:`FitBatchFn` fits a whole batch of datasets in one compiled call.

A thin adapter: the math is :class:`pipeline.fit.LineFitter` (no Beam), built once per
worker process in ``setup()`` and shared through Beam's ``Shared``; results leave as one
Arrow table of output rows per batch.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.utils.shared import Shared

from pipeline.config.faults import checkpoint
from pipeline.config.settings import FitConfig, JobConfig
from pipeline.fit.result import failed
from pipeline.observe.counters import Counters
from pipeline.reduce.batches import Batch
from pipeline.table.schema import results_table

__all__ = ["FitBatchFn", "now"]


def now() -> dt.datetime:
    """The current time, UTC: every row's ``fitted_at``."""
    return dt.datetime.now(dt.timezone.utc)


class _LazyFitter:
    """Builds a :class:`~pipeline.fit.LineFitter` (import TensorFlow, trace) once, on first use or ahead on a thread."""

    def __init__(self, config: FitConfig) -> None:
        self._config = config
        self._fitter = None  # the LineFitter, once built
        self._lock = threading.Lock()
        self._started = False  # whether a thread is building it ahead

    def start(self) -> None:
        """Begin the build on a thread of its own, so that TensorFlow's import overlaps the first batch's reading.

        :meth:`get` then waits for it. A build that fails there is simply tried again by
        the next :meth:`get`, which raises the error where the fit runs.
        """
        with self._lock:
            if self._fitter is not None or self._started:
                return
            self._started = True
        threading.Thread(target=self._build_ahead, name="tapefit-fitter", daemon=True).start()

    def _build_ahead(self) -> None:
        try:
            self.get()
        except Exception:  # noqa: BLE001 (get() on the thread of the fit raises it again)
            pass

    def get(self):  # noqa: ANN202 (a pipeline.fit.LineFitter; not imported here to keep TensorFlow lazy)
        """The fitter, built (and, for the Gram form, traced) by the first caller.

        The row form is traced at its first batch instead: XLA compiles it for the
        batch's shape, and a warm-up shape would be compiled for nothing.
        """
        with self._lock:
            if self._fitter is None:
                from pipeline.fit.fitter import LineFitter

                fitter = LineFitter(self._config)
                if self._config.loss_form == "gram":  # trace the compiled loop now
                    weights = np.ones(3) if self._config.weights else None
                    fitter.fit(np.arange(3.0), np.arange(3.0), weights)
                self._fitter = fitter
        return self._fitter


class FitBatchFn(beam.DoFn):
    """Fits a :class:`Batch` in one compiled call and yields its rows as an Arrow table.

    The compiled TensorFlow loop is built in :meth:`setup` and shared by every thread
    and DoFn instance of a worker process that hold the same ``shared`` handle.

    Args:
        config: The job's configuration.
        shared: Handle through which instances share one :class:`~pipeline.fit.LineFitter`.
        build_ahead: Build it on a thread while the stage goes on, where the stage reads
            the batches it fits (TensorFlow's import then overlaps the first batch's
            reading: ONE 5.02 → 4.77 s, M 6.61 → 6.45 s). Not after a merge of partial
            moments: there the import would overlap the merge's peak of memory (K10: +0.1
            to +0.35 GB for 2 s).
    """

    def __init__(self, config: JobConfig, shared: Shared | None = None, build_ahead: bool = False) -> None:
        self._config = config
        self._shared = shared or Shared()
        self._build_ahead = build_ahead
        self._build = None  # a _LazyFitter, acquired in setup()
        self._counters = None  # Counters, built in setup()
        self._starts = None  # dataset → (w, b) of the previous partition, loaded in setup()

    def setup(self) -> None:
        """Import TensorFlow and trace the descent loop (once per worker process), or start that on a thread.

        With ``--incremental`` most datasets may be reused, so the build waits for the
        first batch that really needs a fit (an unchanged rerun never imports TensorFlow).
        """
        self._build = self._shared.acquire(lambda: _LazyFitter(self._config.fit))
        if not self._config.incremental and self._build_ahead:
            self._build.start()
        elif not self._config.incremental:
            self._build.get()
        self._counters = Counters()
        self._starts = {}  # dataset → previous (w, b), for --warm_start
        if self._config.warm_start:
            from pipeline.table.history import load_previous

            previous = load_previous(self._config)
            self._starts = previous.starts() if previous else {}

    def process(self, batch: Batch) -> Iterator[pa.Table]:
        """Yield one table with a row per dataset of the batch (failed ones included)."""
        checkpoint("fitting")
        fitter = self._build.get()
        started = time.perf_counter()
        starts = [self._starts.get(d) for d in batch.datasets] if self._starts else None
        if isinstance(batch.data, list):
            results = fitter.fit_rows(batch.data, starts) if batch.data else []
        else:
            results = fitter.fit_moments(batch.data, starts) if len(batch.data) else []
        datasets = [*batch.datasets, *(f[0] for f in batch.failed)]
        sources = [*batch.sources, *(f[1] for f in batch.failed)]
        results = [*results, *(failed(f[2]) for f in batch.failed)]
        if not datasets:
            return
        table = results_table(datasets, sources, results, self._config.run_id, now())
        self._counters.count(table, time.perf_counter() - started)
        yield table
