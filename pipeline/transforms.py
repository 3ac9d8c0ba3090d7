"""Beam transforms: read datasets, fit them, and turn every outcome into a row.

Expected problems (too few rows, constant x, divergence) are statuses returned by the
fit. Anything that raises while reading or fitting one dataset - a corrupt file, a
missing column - is caught by Beam's own dead-letter support
(``ParDo(...).with_exception_handling()``) and becomes a ``failed`` row with a
one-line reason, so one bad dataset never stops the job.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from pipeline.datasets import DatasetRef, input_layout
from pipeline.fit import Status
from pipeline.options import JobConfig
from pipeline.progress import ProgressTicker
from pipeline.reading import DatasetError, KeyedChunk, one_line, read_keyed, read_xy
from pipeline.table import failure_row, result_row

__all__ = ["FitDatasets", "FitDatasetFn", "LoadedDataset", "ReadDatasetFn", "ReadKeyedFn"]

NAMESPACE = "tapefit"


class LoadedDataset(NamedTuple):
    """A dataset's rows in memory, ready to fit."""

    ref: DatasetRef
    x: np.ndarray
    y: np.ndarray


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

    def count(self, row: dict, fit_seconds: float | None = None) -> None:
        self.statuses[row["status"]].inc()
        self.rows_used.inc(row["n_rows"])
        self.rows_dropped.inc(row["n_dropped"])
        self.rows_read.inc(row["n_rows"] + row["n_dropped"])
        if row["status"] != Status.FAILED:
            self.steps.update(row["steps"])
        if fit_seconds is not None:
            self.fit_us.update(round(fit_seconds * 1e6))
        self.progress.tick()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class ReadDatasetFn(beam.DoFn):
    """Reads the x, y columns of a dataset's files (several for directory grouping).

    Args:
        x_column: Name of the x column.
        y_column: Name of the y column.
    """

    def __init__(self, x_column: str, y_column: str) -> None:
        self._x_column = x_column
        self._y_column = y_column

    def process(self, ref: DatasetRef) -> Iterator[LoadedDataset]:
        """Yield the dataset's rows; raise :class:`DatasetError` for unreadable data."""
        parts = []
        for path in ref.paths:
            try:
                parts.append(read_xy(path, self._x_column, self._y_column))
            except DatasetError as error:
                if len(ref.paths) == 1:
                    raise
                raise DatasetError(f"{path[len(ref.source) + 1 :]}: {error}") from error
        x = np.concatenate([part[0] for part in parts])
        y = np.concatenate([part[1] for part in parts])
        yield LoadedDataset(ref, x, y)


class ReadKeyedFn(beam.DoFn):
    """Reads one file of a long table and yields ``(key, KeyedChunk)`` per key in it.

    Rows with a null key yield one ``(None, count)`` element, so they are counted.

    Args:
        key_column: The grouping column.
        x_column: Name of the x column.
        y_column: Name of the y column.
    """

    def __init__(self, key_column: str, x_column: str, y_column: str) -> None:
        self._columns = (key_column, x_column, y_column)

    def process(self, path: str) -> Iterator[tuple[str | None, KeyedChunk | int]]:
        """Yield the file's chunks keyed by dataset id, then its null-key count."""
        chunks, null_rows = read_keyed(path, *self._columns)
        for chunk in chunks:
            yield chunk.key, chunk
        if null_rows:
            yield None, null_rows


def _assemble(source: str, key: str, chunks: Iterable[KeyedChunk]) -> LoadedDataset:
    """Concatenate a key's chunks in file order, so results never depend on shuffling."""
    ordered = sorted(chunks, key=lambda chunk: chunk.path)
    ref = DatasetRef(key, source, tuple(chunk.path for chunk in ordered))
    return LoadedDataset(ref, np.concatenate([c.x for c in ordered]), np.concatenate([c.y for c in ordered]))


class FitDatasetFn(beam.DoFn):
    """Fits one loaded dataset and yields its output row.

    The compiled TensorFlow loop is built in :meth:`setup`, once per DoFn instance
    (worker thread), and reused for every dataset.

    Args:
        config: The job's configuration.
    """

    def __init__(self, config: JobConfig) -> None:
        self._config = config
        self._fitter = None  # a pipeline.fit.LineFitter, built in setup()
        self._counters = None  # _Counters, built in setup()

    def setup(self) -> None:
        """Import TensorFlow and trace the descent loop."""
        from pipeline.fit import LineFitter

        self._fitter = LineFitter(self._config.fit)
        self._counters = _Counters()

    def process(self, loaded: LoadedDataset) -> Iterator[dict]:
        """Yield the row of one dataset."""
        started = time.perf_counter()
        result = self._fitter.fit(loaded.x, loaded.y)
        row = result_row(loaded.ref, result, self._config.run_id, _now())
        self._counters.count(row, time.perf_counter() - started)
        yield row


def _error_message(error_info: tuple) -> str:
    """One line from a dead letter's ``(type, repr, traceback lines)``."""
    exc_type, exc_repr, trace = error_info
    last = one_line(trace[-1] if trace else exc_repr, 1000)
    message = last.split(": ", 1)[1] if ": " in last else last
    if isinstance(exc_type, type) and issubclass(exc_type, DatasetError):
        return one_line(message)
    return one_line(f"{getattr(exc_type, '__name__', exc_type)}: {message}")


class _DeadLetterToRowFn(beam.DoFn):
    """Turns a dead letter (the element that raised, and why) into a ``failed`` row."""

    def __init__(self, config: JobConfig) -> None:
        self._config = config
        self._counters = None  # _Counters, built in setup()

    def setup(self) -> None:
        self._counters = _Counters()

    def process(self, dead_letter: tuple) -> Iterator[dict]:
        element, error_info = dead_letter
        message = _error_message(error_info)
        if isinstance(element, LoadedDataset):
            ref = element.ref
        elif isinstance(element, DatasetRef):
            ref = element
        else:  # a file of a long table: its rows belong to no dataset now
            layout = input_layout(self._config.input, self._config.output)
            ref = DatasetRef(layout.relative(element), element, (element,))
            message = f"file could not be read, its rows are in no dataset: {message}"
        row = failure_row(ref, message, self._config.run_id, _now())
        self._counters.count(row)
        yield row


def _count_null_keys(count: int) -> int:
    Metrics.counter(NAMESPACE, "null_key_rows").inc(count)
    return count


class FitDatasets(beam.PTransform):
    """Reads and fits every discovered dataset; exactly one output row per dataset.

    Input: what :class:`pipeline.datasets.DiscoverDatasets` emits. Output: a dict with
    ``rows`` (the output rows, :data:`pipeline.table.SCHEMA`) and ``null_keys``
    (counts of rows skipped for a null key; empty unless grouping by column).

    Args:
        config: The job's configuration.
    """

    def __init__(self, config: JobConfig) -> None:
        super().__init__()
        self._config = config

    def expand(self, found: beam.PCollection) -> dict[str, beam.PCollection]:
        """Wire reading, fitting and the dead letters into one PCollection of rows."""
        config = self._config
        if config.key_column:
            read, read_failed = (
                found
                | "ReadKeyed"
                >> beam.ParDo(
                    ReadKeyedFn(config.key_column, config.x_column, config.y_column)
                ).with_exception_handling()
            )
            chunks, null_keys = read | "SplitNullKeys" >> beam.Partition(lambda kv, _: 0 if kv[0] is not None else 1, 2)
            loaded = (
                chunks
                | "GroupByKey" >> beam.GroupByKey()
                | "Assemble" >> beam.MapTuple(lambda key, parts: _assemble(config.input, key, parts))
            )
            null_keys = null_keys | "NullKeyCounts" >> beam.MapTuple(lambda _, count: _count_null_keys(count))
        else:
            loaded, read_failed = (
                found | "Read" >> beam.ParDo(ReadDatasetFn(config.x_column, config.y_column)).with_exception_handling()
            )
            null_keys = found.pipeline | "NoNullKeys" >> beam.Create([])
        fitted, fit_failed = loaded | "Fit" >> beam.ParDo(FitDatasetFn(config)).with_exception_handling()
        failures = (
            (read_failed, fit_failed)
            | "DeadLetters" >> beam.Flatten()
            | "FailedRows" >> beam.ParDo(_DeadLetterToRowFn(config))
        )
        rows = (fitted, failures) | "AllRows" >> beam.Flatten()
        return {"rows": rows, "null_keys": null_keys}
