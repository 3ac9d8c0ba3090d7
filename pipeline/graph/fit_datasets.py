"""``FitDatasets``: read → (reduce and merge) → fit, with dead letters; one output row per dataset.

Every dataset ends as exactly one output row (in Arrow tables of
:data:`pipeline.table.schema.SCHEMA`). Expected problems (too few rows, constant x,
divergence) are statuses returned by the fit; a file that cannot be read becomes a
``failed`` row with the reason. Anything else that raises while reading or fitting
a batch is caught by Beam's own dead-letter support (:mod:`pipeline.graph.dead_letters`),
so one bad dataset never stops the job nor takes its batch-mates down with it.

With ``--loss_form gram`` a dataset is reduced to its moments while it is read, a
bounded chunk at a time; datasets spread over several files (directory or column
grouping) are merged by :class:`pipeline.reduce.batches.MergePartialsFn` per shard, so no
dataset ever has to fit in one worker's memory.
"""

from __future__ import annotations

from collections.abc import Iterable

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from pipeline.config.settings import GroupBy, JobConfig
from pipeline.discover.listing import Expected
from pipeline.graph.dead_letters import DeadLetterToRowsFn, guarded, singles
from pipeline.graph.fit_batches import FitBatchFn
from pipeline.observe.counters import NAMESPACE
from pipeline.read.parquet import KeyedChunk
from pipeline.reduce.batches import Batch, MergePartialsFn
from pipeline.reduce.readers import ReadBatchFn, ReadKeyedPartsFn, ReadKeyedRowsFn, ReadPartsFn

__all__ = ["FitDatasets"]


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

    Input: what :class:`pipeline.discover.listing.DiscoverDatasets` emits (batches). Output: a
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
            read, read_dead = guarded(found, "ReadKeyed", ReadKeyedPartsFn(config), singles)
            partials, null_keys = _split_counts(read, "SplitNullKeys")
            batches = partials | "MergeParts" >> beam.CombinePerKey(MergePartialsFn()) | "Batches" >> beam.Values()
        elif config.group_by == GroupBy.DIRECTORY and gram:
            partials, read_dead = guarded(found, "ReadParts", ReadPartsFn(*columns), singles)
            batches = partials | "MergeParts" >> beam.CombinePerKey(MergePartialsFn()) | "Batches" >> beam.Values()
        elif config.group_by == GroupBy.COLUMN:
            read, read_dead = guarded(
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
            batches, read_dead = guarded(found, "Read", ReadBatchFn(*columns, config.fit.loss_form), singles)
        fitted, fit_dead = guarded(batches, "Fit", FitBatchFn(config, Shared()), lambda batch: batch.split())
        failures = (
            (read_dead, fit_dead)
            | "DeadLetters" >> beam.Flatten()
            | "FailedRows" >> beam.ParDo(DeadLetterToRowsFn(config))
        )
        tables = (fitted, failures, reused) | "AllTables" >> beam.Flatten()
        if null_keys is None:
            null_keys = found.pipeline | "NoNullKeys" >> beam.Create([])
        else:
            null_keys = null_keys | "NullKeyCounts" >> beam.Map(_count_null_keys)
        return {"tables": tables, "null_keys": null_keys, "expected": expected | "Expected" >> beam.Map(_datasets)}
