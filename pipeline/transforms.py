"""Beam transforms: fit each batch of datasets in one compiled call; wire the pipeline.

The readers live in :mod:`pipeline.readers`; this module fits, turns dead letters
into rows, and assembles :class:`FitDatasets`.

Every dataset ends as exactly one output row (in Arrow tables of
:data:`pipeline.table.SCHEMA`). Expected problems (too few rows, constant x,
divergence) are statuses returned by the fit; a file that cannot be read becomes a
``failed`` row with the reason. Anything else that raises while reading or fitting
a batch is caught by Beam's own dead-letter support
(``ParDo(...).with_exception_handling()``): the batch is retried one dataset at a
time, and only a dataset that still raises becomes a ``failed`` row, so one bad
dataset never stops the job nor takes its batch-mates down with it.

With ``--loss_form gram`` a dataset is reduced to its moments while it is read, a
bounded chunk at a time; datasets spread over several files (directory or column
grouping) are merged by :class:`pipeline.batches.MergePartialsFn` per shard, so no
dataset ever has to fit in one worker's memory.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from pipeline.batches import Batch, MergePartialsFn
from pipeline.datasets import DatasetRef, Expected, input_layout
from pipeline.fit import Status, failed
from pipeline.options import FitConfig, GroupBy, JobConfig
from pipeline.progress import ProgressTicker
from pipeline.readers import ReadBatchFn, ReadKeyedPartsFn, ReadKeyedRowsFn, ReadPartsFn
from pipeline.reading import DatasetError, KeyedChunk, one_line
from pipeline.table import results_table

__all__ = ["NAMESPACE", "FitBatchFn", "FitDatasets"]

NAMESPACE = "tapefit"


class _Counters:
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


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class _LazyFitter:
    """Builds a :class:`~pipeline.fit.LineFitter` (import TensorFlow, trace) once, on first use."""

    def __init__(self, config: FitConfig) -> None:
        self._config = config
        self._fitter = None  # the LineFitter, once built
        self._lock = threading.Lock()

    def get(self):  # noqa: ANN202 (a pipeline.fit.LineFitter; not imported here to keep TensorFlow lazy)
        """The fitter, built and traced by the first caller."""
        with self._lock:
            if self._fitter is None:
                from pipeline.fit import LineFitter

                fitter = LineFitter(self._config)
                fitter.fit(np.arange(3.0), np.arange(3.0))  # trace the compiled loop now
                self._fitter = fitter
        return self._fitter


class FitBatchFn(beam.DoFn):
    """Fits a :class:`Batch` in one compiled call and yields its rows as an Arrow table.

    The compiled TensorFlow loop is built in :meth:`setup` and shared by every thread
    and DoFn instance of a worker process that hold the same ``shared`` handle.

    Args:
        config: The job's configuration.
        shared: Handle through which instances share one :class:`~pipeline.fit.LineFitter`.
    """

    def __init__(self, config: JobConfig, shared: Shared | None = None) -> None:
        self._config = config
        self._shared = shared or Shared()
        self._build = None  # a _LazyFitter, acquired in setup()
        self._counters = None  # _Counters, built in setup()
        self._starts = None  # dataset → (w, b) of the previous partition, loaded in setup()

    def setup(self) -> None:
        """Import TensorFlow and trace the descent loop (once per worker process).

        With ``--incremental`` most datasets may be reused, so the build waits for the
        first batch that really needs a fit (an unchanged rerun never imports TensorFlow).
        """
        self._build = self._shared.acquire(lambda: _LazyFitter(self._config.fit))
        if not self._config.incremental:
            self._build.get()
        self._counters = _Counters()
        self._starts = {}  # dataset → previous (w, b), for --warm_start
        if self._config.warm_start:
            from pipeline.history import load_previous

            previous = load_previous(self._config)
            self._starts = previous.starts() if previous else {}

    def process(self, batch: Batch) -> Iterator[pa.Table]:
        """Yield one table with a row per dataset of the batch (failed ones included)."""
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
        table = results_table(datasets, sources, results, self._config.run_id, _now())
        self._counters.count(table, time.perf_counter() - started)
        yield table


def _error_message(error_info: tuple) -> str:
    """One line from a dead letter's ``(type, repr, traceback lines)``."""
    exc_type, exc_repr, trace = error_info
    last = one_line(trace[-1] if trace else exc_repr, 1000)
    message = last.split(": ", 1)[1] if ": " in last else last
    if isinstance(exc_type, type) and issubclass(exc_type, DatasetError):
        return one_line(message)
    return one_line(f"{getattr(exc_type, '__name__', exc_type)}: {message}")


class _DeadLetterToRowsFn(beam.DoFn):
    """Turns a dead letter (an element that raised even alone, and why) into ``failed`` rows."""

    def __init__(self, config: JobConfig) -> None:
        self._config = config
        self._counters = None  # _Counters, built in setup()

    def setup(self) -> None:
        self._counters = _Counters()

    def process(self, dead_letter: tuple) -> Iterator[pa.Table]:
        element, error_info = dead_letter
        message = _error_message(error_info)
        if isinstance(element, Batch):
            named = [*zip(element.datasets, element.sources, strict=True), *((f[0], f[1]) for f in element.failed)]
        else:
            named = []
            layout = input_layout(self._config.input, self._config.output)
            for item in element if isinstance(element, list) else [element]:
                if isinstance(item, DatasetRef):
                    named.append((item.dataset, item.source))
                else:  # a file of a long table: its rows belong to no dataset now
                    named.append((layout.relative(item), item))
                    message = f"file could not be read, its rows are in no dataset: {message}"
        if named:
            datasets, sources = zip(*named, strict=True)
            table = results_table(datasets, sources, [failed(message)] * len(named), self._config.run_id, _now())
            self._counters.count(table)
            yield table


def _guarded(
    pcoll: beam.PCollection, label: str, fn: beam.DoFn, split: Callable[[object], Iterable]
) -> tuple[beam.PCollection, beam.PCollection]:
    """``ParDo(fn)`` with dead letters; a failed element is retried piece by piece.

    Returns:
        The outputs, and the dead letters of the pieces that failed on their own.
    """
    good, dead = pcoll | label >> beam.ParDo(fn).with_exception_handling()
    retried, still_dead = (
        dead
        | f"{label}Split" >> beam.FlatMap(lambda dead_letter: split(dead_letter[0]))
        | f"{label}OneByOne" >> beam.ParDo(fn).with_exception_handling()
    )
    return (good, retried) | f"{label}Outputs" >> beam.Flatten(), still_dead


def _singles(items: list) -> list[list]:
    return [[item] for item in items]


def _assemble(source: str, key: str, chunks: Iterable[KeyedChunk]) -> tuple[str, str, tuple]:
    """Concatenate a key's chunks in file order, so results never depend on shuffling."""
    ordered = sorted(chunks, key=lambda chunk: chunk.path)
    return key, source, (np.concatenate([c.x for c in ordered]), np.concatenate([c.y for c in ordered]))


def _rows_batch(loaded: list[tuple[str, str, tuple]]) -> Batch:
    return Batch(tuple(k for k, _, _ in loaded), tuple(s for _, s, _ in loaded), [xy for _, _, xy in loaded])


def _split_counts(pcoll: beam.PCollection, label: str) -> tuple[beam.PCollection, beam.PCollection]:
    """Separate the null-key counts (``int``) from the data elements."""
    data, counts = pcoll | label >> beam.Partition(lambda e, _: 1 if isinstance(e, int) else 0, 2)
    return data, counts


def _count_null_keys(count: int) -> int:
    Metrics.counter(NAMESPACE, "null_key_rows").inc(count)
    return count


def _kind_of_found(element: object, _: int) -> int:
    """0: work to read; 1: reused rows (Arrow tables); 2: the count of datasets found."""
    return 1 if isinstance(element, pa.Table) else 2 if isinstance(element, Expected) else 0


def _datasets(expected: Expected) -> int:
    return expected.datasets


class FitDatasets(beam.PTransform):
    """Reads and fits every discovered dataset; exactly one output row per dataset.

    Input: what :class:`pipeline.datasets.DiscoverDatasets` emits (batches). Output: a
    dict with ``tables`` (Arrow tables of output rows, :data:`pipeline.table.SCHEMA`),
    ``null_keys`` (counts of rows skipped for a null key; empty unless grouping by
    column) and ``expected`` (how many datasets were found; empty for column grouping).

    Args:
        config: The job's configuration.
    """

    def __init__(self, config: JobConfig) -> None:
        super().__init__()
        self._config = config

    def expand(self, found: beam.PCollection) -> dict[str, beam.PCollection]:
        """Wire reading, merging, fitting and the dead letters into one PCollection of tables."""
        config = self._config
        gram = config.fit.loss_form == "gram"
        columns = (config.x_column, config.y_column)
        null_keys = None
        found, reused, expected = found | "SplitReused" >> beam.Partition(_kind_of_found, 3)
        if config.group_by == GroupBy.COLUMN and gram:
            read, read_dead = _guarded(found, "ReadKeyed", ReadKeyedPartsFn(config), _singles)
            partials, null_keys = _split_counts(read, "SplitNullKeys")
            batches = partials | "MergeParts" >> beam.CombinePerKey(MergePartialsFn()) | "Batches" >> beam.Values()
        elif config.group_by == GroupBy.DIRECTORY and gram:
            partials, read_dead = _guarded(found, "ReadParts", ReadPartsFn(*columns), _singles)
            batches = partials | "MergeParts" >> beam.CombinePerKey(MergePartialsFn()) | "Batches" >> beam.Values()
        elif config.group_by == GroupBy.COLUMN:
            read, read_dead = _guarded(
                found | "Files" >> beam.FlatMap(lambda paths: paths),
                "ReadKeyed",
                ReadKeyedRowsFn(config.key_column, *columns),
                lambda path: [path],
            )
            chunks, null_keys = _split_counts(read, "SplitNullKeys")
            batches = (
                chunks
                | "GroupByKey" >> beam.GroupByKey()
                | "Assemble" >> beam.MapTuple(lambda key, parts: _assemble(config.input, key, parts))
                | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=config.batch_size)
                | "RowsBatches" >> beam.Map(_rows_batch)
            )
        else:
            batches, read_dead = _guarded(found, "Read", ReadBatchFn(*columns, config.fit.loss_form), _singles)
        fitted, fit_dead = _guarded(batches, "Fit", FitBatchFn(config, Shared()), lambda batch: batch.split())
        failures = (
            (read_dead, fit_dead)
            | "DeadLetters" >> beam.Flatten()
            | "FailedRows" >> beam.ParDo(_DeadLetterToRowsFn(config))
        )
        tables = (fitted, failures, reused) | "AllTables" >> beam.Flatten()
        if null_keys is None:
            null_keys = found.pipeline | "NoNullKeys" >> beam.Create([])
        else:
            null_keys = null_keys | "NullKeyCounts" >> beam.Map(_count_null_keys)
        return {"tables": tables, "null_keys": null_keys, "expected": expected | "Expected" >> beam.Map(_datasets)}
