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
from pipeline.graph.dead_letters import DeadLetterToRowsFn, dead_parts, flattened, guarded, singles
from pipeline.graph.fit_batches import FitBatchFn
from pipeline.observe.counters import NAMESPACE
from pipeline.read.parquet import KeyedChunk
from pipeline.reduce.batches import Batch, MergePartialsFn, mixed_kinds_reason
from pipeline.reduce.readers import (
    ReadBatchFn,
    ReadKeyedPartsFn,
    ReadKeyedRowsFn,
    ReadPartsFn,
    row_limit,
    too_many_rows,
)

__all__ = ["FitDatasets"]


def _assemble(source: str, key: str, chunks: Iterable[KeyedChunk], max_rows: int = 0) -> tuple[str, str, tuple | str]:
    """Concatenate a key's chunks in file order, so results never depend on shuffling.

    A key id whose chunks hold keys of several kinds (the integer 1 here, the text "1"
    there) stands for several datasets, and a key with more than ``max_rows`` rows
    (0: sized for the worker) does not fit in memory: each gets the reason it fails
    instead of rows.
    """
    ordered = sorted(chunks, key=lambda chunk: chunk.path)
    kinds: dict[str, str] = {}
    for chunk in ordered:
        kinds.setdefault(chunk.kind, chunk.path)
    if len(kinds) > 1:
        return key, source, mixed_kinds_reason(key, kinds)
    rows, limit = sum(c.x.size for c in ordered), row_limit(max_rows)
    if rows > limit:
        return key, source, str(too_many_rows(rows, limit))
    columns = [np.concatenate([c.x for c in ordered]), np.concatenate([c.y for c in ordered])]
    if ordered and ordered[0].w is not None:
        columns.append(np.concatenate([c.w for c in ordered]))
    return key, source, tuple(columns)


def _rows_batch(loaded: list[tuple[str, str, tuple | str]]) -> Batch:
    good = [item for item in loaded if not isinstance(item[2], str)]
    failed = tuple(item for item in loaded if isinstance(item[2], str))
    return Batch(tuple(k for k, _, _ in good), tuple(s for _, s, _ in good), [xy for _, _, xy in good], failed)


def _split_counts(pcoll: beam.PCollection, label: str) -> tuple[beam.PCollection, beam.PCollection]:
    """Separate the null-key counts (``int``) from the data elements."""
    data, counts = pcoll | label >> beam.Partition(lambda e, _: 1 if isinstance(e, int) else 0, 2)
    return data, counts


def _count_null_keys(count: int) -> int:
    Metrics.counter(NAMESPACE, "null_key_rows").inc(count)
    return count


def _kind_of_found(element: object, _: int) -> int:
    """0: work to read; 1: reused rows (Arrow tables); 2: what was found; 3: reused null-key counts."""
    if isinstance(element, pa.Table):
        return 1
    return 2 if isinstance(element, Expected) else 3 if isinstance(element, int) else 0


def _found(expected: Expected) -> Expected:
    """What discovery found (the ids, the skipped files), passed on to the commit."""
    return expected


class FitDatasets(beam.PTransform):
    """Reads and fits every discovered dataset; exactly one output row per dataset.

    Input: what :class:`pipeline.discover.listing.DiscoverDatasets` emits (batches). Output: a
    dict with ``tables`` (Arrow tables of output rows, :data:`pipeline.table.SCHEMA`),
    ``null_keys`` (counts of rows skipped for a null key; empty unless grouping by
    column; a fully reused run carries the previous run's count) and ``expected``
    (:class:`~pipeline.discover.listing.Expected`: the ids found, none for column
    grouping, and the files skipped).

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
        read_with_fit = False  # whether the fit shares its stage with the reading
        found, reused, expected, carried = found | "SplitReused" >> beam.Partition(_kind_of_found, 4)
        if config.group_by == GroupBy.COLUMN and gram:
            read, read_dead = guarded(found, "ReadKeyed", ReadKeyedPartsFn(config), singles)
            partials, null_keys = _split_counts(flattened(read, "ReadKeyedOutputs"), "SplitNullKeys")
            batches = [partials | "MergeParts" >> beam.CombinePerKey(MergePartialsFn()) | "Batches" >> beam.Values()]
        elif config.group_by == GroupBy.DIRECTORY and gram:
            partials, dead_part = guarded(
                found, "ReadParts", ReadPartsFn(*columns, config.weight_column, config.read_threads), singles
            )
            # a part that raised fails its whole dataset in the merge, once, naming the part
            failed_parts = flattened(dead_part, "DeadPartLetters") | "DeadParts" >> beam.FlatMap(dead_parts)
            batches = [
                flattened([*partials, failed_parts], "AllPartials")
                | "MergeParts" >> beam.CombinePerKey(MergePartialsFn())
                | "Batches" >> beam.Values()
            ]
            read_dead = []
        elif config.group_by == GroupBy.COLUMN:
            read, read_dead = guarded(
                found | "Files" >> beam.FlatMap(lambda paths: paths),
                "ReadKeyed",
                ReadKeyedRowsFn(config.key_column, *columns, config.weight_column),
                lambda path: [path],
            )
            chunks, null_keys = _split_counts(flattened(read, "ReadKeyedOutputs"), "SplitNullKeys")
            batches = [
                chunks
                | "GroupByKey" >> beam.GroupByKey()
                | "Assemble"
                >> beam.MapTuple(lambda key, parts: _assemble(config.input, key, parts, config.max_rows_in_memory))
                | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=config.batch_size)
                | "RowsBatches" >> beam.Map(_rows_batch)
            ]
        else:  # each file's batches go straight on to the fit, in the same stage
            read_with_fit = True
            reader = ReadBatchFn(
                *columns, config.fit.loss_form, config.weight_column, config.max_rows_in_memory, config.read_threads
            )
            batches, read_dead = guarded(found, "Read", reader, singles)
        fit = FitBatchFn(config, Shared(), build_ahead=read_with_fit)
        fitted, fit_dead = guarded(batches, "Fit", fit, lambda batch: batch.split())
        failures = flattened([*read_dead, *fit_dead], "DeadLetters") | "FailedRows" >> beam.ParDo(
            DeadLetterToRowsFn(config)
        )
        tables = flattened([*fitted, failures, reused], "AllTables")
        if null_keys is None:
            null_keys = found.pipeline | "NoNullKeys" >> beam.Create([])
        else:
            null_keys = null_keys | "NullKeyCounts" >> beam.Map(_count_null_keys)
        null_keys = (null_keys, carried) | "AllNullKeys" >> beam.Flatten()
        return {"tables": tables, "null_keys": null_keys, "expected": expected | "Expected" >> beam.Map(_found)}
