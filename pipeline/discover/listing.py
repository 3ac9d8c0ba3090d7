"""Listing the input once and cutting its datasets into batches: :class:`DiscoverDatasets`.

Listing runs inside the pipeline, on a worker, so a cloud runner lists a bucket with its
own credentials. Datasets travel in batches: a few Beam elements per thousand datasets.
With a table :class:`History` (``--incremental``), unchanged datasets leave here as
their previous rows and are never read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import apache_beam as beam
import pyarrow as pa

from pipeline.config.settings import GroupBy, JobConfig
from pipeline.discover.fingerprints import WHOLE_INPUT, fingerprint, settings_key
from pipeline.discover.layout import DatasetRef, directory_ref, file_ref, input_layout, list_input, parent, unique_ids

__all__ = ["BATCH_BYTES", "DiscoverDatasets", "Expected", "History", "ReadBatch", "merge_expected"]


class History(Protocol):
    """What discovery needs of the output table's past (see :mod:`pipeline.table.history`)."""

    def record(self, fingerprints: dict[str, str]) -> None:
        """Store this run's input fingerprints beside the partition being written."""

    def reuse(self, items: list, fingerprints: dict[str, str]) -> Iterator[pa.Table | int]:
        """Yield the previous rows of unchanged datasets; return the items that still need a fit.

        A reuse that skips reading rows with null keys also yields their count (an ``int``).
        """


@dataclass(frozen=True)
class Expected:
    """What discovery found: the dataset ids, and the files it skipped.

    With file and directory grouping every id must end as exactly one row; the commit
    compares the ids written with these before making the partition visible. With
    column grouping the ids are known only once the rows are read (``datasets`` is
    ``None``).

    Attributes:
        datasets: The dataset ids found, sorted, or ``None`` (column grouping).
        skipped: ``(path, reason)`` of files that matched the input but cannot be read
            as input (dangling links, link loops, folders that cannot be listed), sorted.
    """

    datasets: tuple[str, ...] | None
    skipped: tuple[tuple[str, str], ...] = ()


def merge_expected(found: Iterable[Expected]) -> Expected:
    """Combine what several listings found (for ``beam.CombineGlobally``; none: nothing known)."""
    found = list(found)
    ids = [e.datasets for e in found if e.datasets is not None]
    return Expected(
        tuple(sorted(d for datasets in ids for d in datasets)) if ids else None,
        tuple(sorted(s for e in found for s in e.skipped)),
    )


# A read batch holds at most this many bytes of Parquet, so that files of any size
# spread over the workers (the dataset count is capped by --batch_size).
BATCH_BYTES = 32 << 20


class ReadBatch(list):
    """One read batch: a plain list of what the readers need, as one Beam element.

    A subclass only so that Beam's coder, which encodes a ``list`` item by item (and
    each :class:`DatasetRef` in a pickle call of its own), pickles the whole batch in
    one call: 20,000 datasets cost 0.02 s instead of 0.4 s at each stage boundary.
    """

    __slots__ = ()


def _batches(items: list, sizes: list[int], most: int) -> Iterator[ReadBatch]:
    """Cut ``items`` into runs of at most ``most`` items and about ``BATCH_BYTES``."""
    batch = ReadBatch()
    weight = 0
    for item, size in zip(items, sizes, strict=True):
        if batch and (len(batch) >= most or weight + size > BATCH_BYTES):
            yield batch
            batch, weight = ReadBatch(), 0
        batch.append(item)
        weight += size
    if batch:
        yield batch


class _ListBatchesFn(beam.DoFn):
    """Lists the input once; records fingerprints; yields batches (and reused rows)."""

    def __init__(self, config: JobConfig, history: History | None) -> None:
        self._config = config
        self._history = history
        # gram moments of directory datasets are read part by part and merged later
        self._parts = config.group_by == GroupBy.DIRECTORY and config.fit.loss_form == "gram"

    def process(self, _input: str) -> Iterator[list | pa.Table | Expected | int]:
        """Yield lists of DatasetRefs (file/directory grouping) or of paths (column).

        First comes one :class:`Expected`: the ids found and the files skipped. With a
        history and ``--incremental``, the previous rows of unchanged datasets are
        yielded as Arrow tables instead, and those datasets are not read at all (with
        the null-key count of a fully reused column grouping, an ``int``).
        """
        config = self._config
        layout = input_layout(config.input, config.output)
        listing = list_input(layout)
        found = [(f.path, f.size, f.modified) for f in listing.files]
        size = {path: length for path, length, _ in found}
        stamp = {f.path: (f.path, f.size, f.modified, f.identity) for f in listing.files}
        settings = settings_key(config)
        if config.group_by == GroupBy.FILE:
            items = unique_ids(layout, [file_ref(layout, path) for path, _, _ in found])
        elif config.group_by == GroupBy.COLUMN:
            items = [path for path, _, _ in found]
        else:
            folders: dict[str, list[str]] = {}
            for path, _, _ in found:
                folders.setdefault(parent(path), []).append(path)
            items = unique_ids(layout, [directory_ref(layout, folder, paths) for folder, paths in folders.items()])
        if config.group_by == GroupBy.COLUMN:
            prints = {WHOLE_INPUT: fingerprint(settings, list(stamp.values()))}
            yield Expected(None, listing.skipped)
        else:
            prints = {ref.dataset: fingerprint(settings, [stamp[p] for p in ref.paths]) for ref in items}
            yield Expected(tuple(sorted(prints)), listing.skipped)
        if self._history is not None:
            self._history.record(prints)
            if config.incremental:
                items = yield from self._history.reuse(items, prints)
        if self._parts:  # one ref per part file, merged again by dataset after reading
            items = [
                DatasetRef(ref.dataset, ref.source, (path,)) if ref.error is None else ref
                for ref in items
                for path in (ref.paths if ref.error is None else ref.paths[:1])
            ]
        weights = [size[item] if isinstance(item, str) else sum(size[p] for p in item.paths) for item in items]
        yield from _batches(items, weights, config.batch_size)


class DiscoverDatasets(beam.PTransform):
    """Lists the input inside the pipeline and emits batches of what the readers need.

    One :class:`Expected` element tells which datasets there are in all (file and
    directory grouping) and which files were skipped. With ``--incremental``, unchanged
    datasets arrive as Arrow tables of their reused rows (:mod:`pipeline.table.history`).
    Otherwise, for ``file`` and
    ``directory`` grouping each element is a list of
    :class:`DatasetRef` (with ``parts``, one ref per part file of a directory); for
    ``column:`` grouping it is a list of file paths (the datasets only appear once
    their rows are read). With ``--loss_form gram``, directory datasets are emitted
    one ref per part file, so their parts are read in parallel. Batches hold at
    most ``batch_size`` datasets and about ``BATCH_BYTES`` of Parquet. Listing runs
    on a worker, so a cloud runner lists a bucket itself; a ``Reshuffle`` spreads the
    batches across workers.

    Args:
        config: The job's configuration.
        history: The output table's history, which records this run's input
            fingerprints and, with ``--incremental``, supplies the rows of unchanged
            datasets; ``None`` for neither (BigQuery output, tests of discovery alone).
    """

    def __init__(self, config: JobConfig, history: History | None = None) -> None:
        super().__init__()
        self._config = config
        self._history = history

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        """Return batches of DatasetRefs (file/directory grouping) or of paths (column).

        Nothing is looked up here: the input is resolved and listed on a worker.
        """
        return (
            pbegin
            | "Pattern" >> beam.Create([self._config.input])
            | "ListBatches" >> beam.ParDo(_ListBatchesFn(self._config, self._history))
            | "Spread" >> beam.Reshuffle()
        )
