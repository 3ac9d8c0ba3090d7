"""What flows between tapefit's Beam stages: batches of datasets, and partial moments.

Few, large elements keep Beam's per-element cost off the per-dataset budget:

* :class:`Batch`: datasets ready to fit together in one compiled call, with either
  their :class:`~pipeline.reduce.moments.Moments` (``gram``) or their rows (``rows``), and
  those that could not be read, with the reason;
* :class:`Partials`: moments of *parts* of datasets (one part file of a directory
  dataset, one file's share of each key of a long table), keyed by shard and merged
  by :class:`MergePartialsFn`, a ``CombineFn`` that Beam can lift across workers.
  Partials are merged in (dataset, part) order when the combine is extracted, so the
  result never depends on how Beam bundled them.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.reduce.moments import Moments, concat, empty, reduce_runs

__all__ = ["SHARDS", "Batch", "MergePartialsFn", "Partials", "mixed_kinds_reason", "shard_of"]

# Shards of the dataset-id space for merging partial moments: enough to keep every
# worker busy, few enough that each merged shard is one large fit batch.
SHARDS = 16


@functools.lru_cache(maxsize=1 << 18)  # a long table's keys come back in every file
def shard_of(dataset: str) -> int:
    """A dataset's shard, the same in every process (unlike ``hash``)."""
    return zlib.crc32(dataset.encode("utf-8")) % SHARDS


@dataclass(frozen=True)
class Batch:
    """Datasets to fit together.

    Attributes:
        datasets: Dataset ids of the readable datasets, in order.
        sources: The file or directory each came from.
        data: Their :class:`Moments` (``gram``) or a list of ``(x, y)`` arrays (``rows``).
        failed: ``(dataset, source, reason)`` of datasets that could not be read.
    """

    datasets: tuple[str, ...]
    sources: tuple[str, ...]
    data: Moments | list
    failed: tuple[tuple[str, str, str], ...] = ()

    def split(self) -> list[Batch]:
        """One batch per dataset (to retry a batch that raised, one dataset at a time)."""
        singles = [
            Batch((d,), (s,), self.data.take(slice(i, i + 1)) if isinstance(self.data, Moments) else [self.data[i]])
            for i, (d, s) in enumerate(zip(self.datasets, self.sources, strict=True))
        ]
        return singles + [
            Batch((), (), self.data.take(slice(0, 0)) if isinstance(self.data, Moments) else [], (f,))
            for f in self.failed
        ]


@dataclass(frozen=True)
class Partials:
    """Moments of parts of datasets, to be merged with the other parts of the same ids.

    Attributes:
        datasets: Dataset id of each entry.
        sources: The source recorded for the dataset (its directory, or the input).
        parts: What each entry covers (its file path): the merge order.
        moments: One entry per part.
        failed: ``(dataset, source, part, reason)`` of parts that could not be read:
            the whole dataset then fails with that reason.
        kinds: The kind of each entry's key (column grouping, see
            :func:`pipeline.read.parquet.key_ids`), or empty: one id with two kinds
            is two different keys, and fails as one dataset.
    """

    datasets: tuple[str, ...]
    sources: tuple[str, ...]
    parts: tuple[str, ...]
    moments: Moments
    failed: tuple[tuple[str, str, str, str], ...] = field(default=())
    kinds: tuple[str, ...] = field(default=())


def _mixed_kinds(accumulator: list[Partials]) -> Iterator[tuple[str, str, str, str]]:
    """``(dataset, source, part, reason)`` for every id whose parts have keys of several kinds."""
    seen: dict[str, dict[str, str]] = {}  # id -> kind -> first part (in sorted order)
    sources: dict[str, str] = {}
    for partials in accumulator:
        for dataset, source, part, kind in zip(
            partials.datasets, partials.sources, partials.parts, partials.kinds, strict=True
        ):
            kinds = seen.setdefault(dataset, {})
            if kind not in kinds or part < kinds[kind]:
                kinds[kind] = part
            sources.setdefault(dataset, source)
    for dataset, kinds in seen.items():
        if len(kinds) > 1:
            yield dataset, sources[dataset], min(kinds.values()), mixed_kinds_reason(dataset, kinds)


def mixed_kinds_reason(key: str, kinds: dict[str, str]) -> str:
    """Why a key id that stands for values of several kinds fails (``kinds``: kind → a file holding it)."""
    where = ", ".join(f"{kind} (in {part})" for kind, part in sorted(kinds.items()))
    return (
        f"the key {key} has {len(kinds)} kinds, which are different datasets with one id: {where}; "
        "give the key column one type in every file"
    )


class MergePartialsFn(beam.CombineFn):
    """Merges the partial moments of a shard into one :class:`Batch` of whole datasets.

    The accumulator keeps the (small) partial moments, one entry per part, and merges
    them only in :meth:`extract_output`, in sorted (dataset, part) order: memory is
    O(parts), never O(rows), and the numbers are the same on every run.
    """

    def create_accumulator(self) -> list[Partials]:
        """Return an empty list of partials."""
        return []

    def add_input(self, accumulator: list[Partials], partials: Partials) -> list[Partials]:
        """Keep one more element of partial moments."""
        accumulator.append(partials)
        return accumulator

    def merge_accumulators(self, accumulators: list[list[Partials]]) -> list[Partials]:
        """Concatenate partial lists (merging happens, in a fixed order, at extraction)."""
        return [partials for accumulator in accumulators for partials in accumulator]

    def extract_output(self, accumulator: list[Partials]) -> Batch:
        """Merge every dataset's parts in (dataset, part) order and return the batch."""
        datasets = [d for p in accumulator for d in p.datasets]
        parts = [q for p in accumulator for q in p.parts]
        sources = [s for p in accumulator for s in p.sources]
        moments = concat([p.moments for p in accumulator]) if accumulator else empty(0)
        failures: dict[str, tuple[str, str, str]] = {}
        for dataset, source, part, reason in sorted(f for p in accumulator for f in p.failed):
            failures.setdefault(dataset, (source, part, reason))
        if len({kind for p in accumulator for kind in set(p.kinds)}) > 1:  # e.g. integer keys here, text there
            for dataset, source, part, reason in _mixed_kinds([p for p in accumulator if p.kinds]):
                failures.setdefault(dataset, (source, part, reason))
        keys = pa.table({"dataset": pa.array(datasets, pa.string()), "part": pa.array(parts, pa.string())})
        order = pc.sort_indices(keys, sort_keys=[("dataset", "ascending"), ("part", "ascending")]).to_numpy()
        if failures:  # a dataset with an unreadable part fails as a whole
            failing = pc.is_in(keys.column("dataset"), pa.array(list(failures), pa.string())).to_numpy(False)
            order = order[~failing[order]]
        ids = keys.column("dataset").take(pa.array(order)).to_numpy(zero_copy_only=False)
        starts = np.flatnonzero(np.append(True, ids[1:] != ids[:-1])) if ids.size else np.zeros(0, np.int64)
        merged = reduce_runs(moments.take(order), starts) if ids.size else empty(0)
        failed = tuple((dataset, source, reason) for dataset, (source, _, reason) in sorted(failures.items()))
        return Batch(
            tuple(ids[starts].tolist()),
            tuple(sources[i] for i in order[starts].tolist()),
            merged,
            failed,
        )
