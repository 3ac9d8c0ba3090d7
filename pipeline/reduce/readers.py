"""Beam DoFns that read datasets in batches: whole datasets, part files, long tables.

Every reader reads through :mod:`pipeline.read.parquet` (pyarrow via Beam's
``FileSystems``), a bounded chunk at a time. A file that cannot be read is a reason
in the output (it becomes a ``failed`` row), never an exception that stops the batch.
In the Gram form (:mod:`pipeline.reduce.moments`) data is reduced to moments as it is read;
datasets spread over several files leave as :class:`~pipeline.reduce.batches.Partials`
keyed by shard, for :class:`~pipeline.reduce.batches.MergePartialsFn`.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from contextlib import closing

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config.settings import JobConfig
from pipeline.discover.layout import DatasetRef, input_layout
from pipeline.read import parquet
from pipeline.read.many_files import read_many
from pipeline.read.parquet import (
    DatasetError,
    KeyedChunk,
    iter_columns,
    iter_tables,
    read_keyed,
    small_columns,
    split_by_key,
    stable_order,
    to_float64,
)
from pipeline.reduce.batches import SHARDS, Batch, Partials, shard_of
from pipeline.reduce.moments import Moments, MomentsBuilder, concat, reduce_runs, segment_moments
from pipeline.reduce.threads import Workers

__all__ = ["BYTES_PER_ROW", "ReadBatchFn", "ReadKeyedPartsFn", "ReadKeyedRowsFn", "ReadPartsFn", "row_limit"]

# Peak memory of the row form per row of a dataset (its columns, their standardized
# copies, the block matrices and the compiled loop's buffers), measured with margin.
BYTES_PER_ROW = 200


def row_limit(configured: int) -> int:
    """The most rows one dataset may hold in the row form: ``configured``, or 0 → a quarter of this machine's memory."""
    if configured:
        return configured
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume 8 GiB
        memory = 8 << 30
    return max(1, memory // 4 // BYTES_PER_ROW)


def too_many_rows(rows: int, limit: int) -> DatasetError:
    """The failure of a dataset that would not fit in memory in the row form."""
    return DatasetError(
        f"more than {limit:,} rows (--max_rows_in_memory): the row form holds a dataset in memory "
        f"(at least {rows:,} rows here); raise the limit on a bigger worker, or use --loss squared, "
        "whose Gram form streams datasets of any size"
    )


class _ReadAhead:
    """A batch's files, read ahead of the caller: by DuckDB where it can, else by pyarrow on the worker threads.

    DuckDB reads small files a bounded number of rows ahead; the small local files it
    leaves are read whole on the threads, at most one per thread ahead of the caller.
    Any other file is streamed by the caller, chunk by chunk. Every array is the one
    :func:`~pipeline.read.parquet.iter_columns` gives.

    Args:
        paths: Every file of the batch, in the order the caller reads them.
        columns: The numeric columns to read.
        workers: The threads to read on (one: nothing is read ahead by pyarrow).
    """

    def __init__(self, paths: list[str], columns: tuple[str, ...], workers: Workers) -> None:
        self._paths, self._columns, self._workers = paths, columns, workers
        self._index = {path: i for i, path in reversed(list(enumerate(paths)))}  # a path's first place
        self._read: dict[str, tuple[np.ndarray, ...]] = {}
        self._tried = 0  # paths[:_tried] were offered to DuckDB already
        self._reading: dict[int, Future] = {}  # place -> pyarrow's read of a small file, on a thread

    def chunks(self, path: str) -> Iterable[tuple[np.ndarray, ...]]:
        """``path``'s column chunks: DuckDB's arrays if it read the file, else pyarrow's, chunk by chunk."""
        place = self._index.get(path, len(self._paths))
        if self._tried <= place < len(self._paths):
            found, tried = read_many(self._paths[place:], self._columns)
            self._read.update(found)
            self._tried = place + tried
        values = self._read.pop(path, None)
        self._read_on_threads(place)
        if values is None and place in self._reading:
            values = self._reading.pop(place).result()
        return [values] if values is not None else iter_columns(path, self._columns)

    def _read_on_threads(self, place: int) -> None:
        """Start reading the files after ``place`` that DuckDB did not read, one per thread; forget those before."""
        for done in [q for q in self._reading if q < place]:
            self._reading.pop(done).cancel()  # its dataset failed on an earlier file
        if self._workers.threads < 2:
            return
        for ahead in range(place + 1, min(place + 1 + self._workers.threads, self._tried)):
            upcoming = self._paths[ahead]
            if ahead not in self._reading and upcoming not in self._read and self._index[upcoming] == ahead:
                self._reading[ahead] = self._workers.submit(small_columns, upcoming, self._columns)


def _read_refs(
    refs: list[DatasetRef], columns: tuple[str, ...], gram: bool, max_rows: int = 0, workers: Workers | None = None
) -> tuple[list[DatasetRef], object, list[tuple[DatasetRef, str]]]:
    """Read whole datasets: (readable refs, their Moments or column tuples, unreadable refs with reasons).

    ``columns`` are x, y and optionally the weights. In the row form a dataset with more
    than ``max_rows`` rows (0: no limit) is unreadable, and its chunks are let go at once.
    Small files are read ahead on ``workers`` (none: on this thread, in turn).
    """
    builder = MomentsBuilder() if gram else None
    good, rows, bad = [], [], []
    paths = [path for ref in refs if ref.error is None for path in ref.paths]
    ahead = _ReadAhead(paths, columns, workers or Workers(1, "tapefit-read"))
    for ref in refs:
        if ref.error is not None:  # found, but not to be fitted (an id shared by several files)
            bad.append((ref, ref.error))
            continue
        chunks, held = [], 0
        try:
            for path in ref.paths:
                try:
                    for values in ahead.chunks(path):
                        if builder is not None:
                            builder.add(len(good), *values)
                            continue
                        held += len(values[0])
                        if max_rows and held > max_rows:
                            chunks.clear()
                            raise too_many_rows(held, max_rows)
                        chunks.append(values)
                except DatasetError as error:
                    if ref.source == path:
                        raise
                    raise DatasetError(f"{path[len(ref.source) + 1 :]}: {error}") from error
        except DatasetError as error:
            bad.append((ref, str(error)))
            if builder is not None:
                builder.discard(len(good))
            continue
        good.append(ref)
        if builder is None:
            rows.append(
                tuple(np.concatenate([c[i] for c in chunks]) if chunks else np.zeros(0) for i in range(len(columns)))
            )
    return good, rows if builder is None else builder.result(len(good)), bad


class _ReadingFn(beam.DoFn):
    """A reading DoFn with this worker's reading threads, started in ``setup()``.

    Args:
        read_threads: Threads to read on (0: one per core; 1: none, all on the caller's thread).
    """

    def __init__(self, read_threads: int) -> None:
        self._threads = read_threads
        self._workers: Workers | None = None  # set in setup()

    @property
    def workers(self) -> Workers:
        """The threads, or (``process`` called without ``setup``) the caller's thread alone."""
        return self._workers or Workers(1, "tapefit-read")

    def setup(self) -> None:
        """Start the reading threads."""
        self._workers = Workers(self._threads, "tapefit-read")

    def teardown(self) -> None:
        """Let the threads go."""
        if self._workers is not None:
            self._workers.close()


class ReadBatchFn(_ReadingFn):
    """Reads a batch of whole datasets into a :class:`Batch` (file and directory grouping).

    With ``gram`` each dataset becomes its moments, read a bounded chunk at a time;
    with ``rows`` its x, y (and weight) columns are kept in memory, at most
    ``max_rows_in_memory`` rows a dataset.

    Args:
        x_column: Name of the x column.
        y_column: Name of the y column.
        loss_form: ``"gram"`` or ``"rows"``.
        weight_column: Name of the row-weight column, or ``None``.
        max_rows_in_memory: Row form: most rows a dataset may have (0: sized for the worker).
        read_threads: Threads small files are read ahead on (0: one per core).
    """

    def __init__(
        self,
        x_column: str,
        y_column: str,
        loss_form: str,
        weight_column: str | None = None,
        max_rows_in_memory: int = 0,
        read_threads: int = 1,
    ) -> None:
        super().__init__(read_threads)
        self._columns = (x_column, y_column) + ((weight_column,) if weight_column else ())
        self._gram = loss_form == "gram"
        self._configured = max_rows_in_memory
        self._max_rows = 0  # the limit on this worker, set in setup()

    def setup(self) -> None:
        """Size the row form's limit for this worker's memory; start the reading threads."""
        self._max_rows = 0 if self._gram else row_limit(self._configured)
        super().setup()

    def process(self, refs: list[DatasetRef]) -> Iterator[Batch]:
        """Yield one batch: the readable datasets' data and the unreadable ones' reasons."""
        good, data, bad = _read_refs(refs, self._columns, self._gram, self._max_rows, self.workers)
        failures = tuple((ref.dataset, ref.source, reason) for ref, reason in bad)
        yield Batch(tuple(r.dataset for r in good), tuple(r.source for r in good), data, failures)


def _by_shard(partials: Partials) -> Iterator[tuple[int, Partials]]:
    """Split partial moments by the shard of their dataset ids (keeping the keys' kinds, if any).

    Entries keep their order within a shard; a long table's file holds thousands of keys,
    so the split is one stable sort and C-level gathers, not a loop over entries.
    """
    shard = np.fromiter(map(shard_of, partials.datasets), np.int64, len(partials.datasets))
    order = np.argsort(shard, kind="stable")
    bounds = np.searchsorted(shard[order], np.arange(SHARDS + 1))
    failed_by_shard: dict[int, list[tuple]] = {}
    for failure in partials.failed:
        failed_by_shard.setdefault(shard_of(failure[0]), []).append(failure)
    for key in range(SHARDS):
        index = order[bounds[key] : bounds[key + 1]]
        if not index.size and key not in failed_by_shard:
            continue
        pick = _picker(index)
        yield (
            key,
            Partials(
                pick(partials.datasets),
                pick(partials.sources),
                pick(partials.parts),
                partials.moments.take(index),
                tuple(failed_by_shard.get(key, ())),
                pick(partials.kinds) if partials.kinds else (),
            ),
        )


def _picker(index: np.ndarray):  # noqa: ANN202 (a function from a tuple to the tuple of its entries at index)
    """``values → tuple(values[i] for i in index)``, done by ``operator.itemgetter`` in C."""
    if not index.size:
        return lambda values: ()
    getter = operator.itemgetter(*index.tolist())
    return (lambda values: (getter(values),)) if index.size == 1 else getter


class ReadPartsFn(_ReadingFn):
    """Reads part files of directory datasets into partial moments keyed by shard.

    Args:
        x_column: Name of the x column.
        y_column: Name of the y column.
        weight_column: Name of the row-weight column, or ``None``.
        read_threads: Threads small part files are read ahead on (0: one per core).
    """

    def __init__(self, x_column: str, y_column: str, weight_column: str | None = None, read_threads: int = 1) -> None:
        super().__init__(read_threads)
        self._columns = (x_column, y_column) + ((weight_column,) if weight_column else ())

    def process(self, refs: list[DatasetRef]) -> Iterator[tuple[int, Partials]]:
        """Yield ``(shard, Partials)``; each ref holds one part file of its dataset."""
        good, moments, bad = _read_refs(refs, self._columns, gram=True, workers=self.workers)
        yield from _by_shard(
            Partials(
                tuple(r.dataset for r in good),
                tuple(r.source for r in good),
                tuple(r.paths[0] for r in good),
                moments,
                tuple((r.dataset, r.source, r.paths[0], reason) for r, reason in bad),
            )
        )


# Entries merged per call of reduce_runs when a file's chunks are merged by key: its
# temporaries are about four times its input, so a 10M-row file's million entries,
# merged at once, took 600 MB; in groups of this size they take a few tens.
_MERGE_GROUP = 1 << 16


def _merged_runs(pieces: list[Moments], order: np.ndarray, starts: np.ndarray, workers: Workers) -> Moments:
    """``reduce_runs(concat(pieces).take(order), starts)``, in groups of whole runs, on the threads.

    Runs merge apart from each other, so each group of about :data:`_MERGE_GROUP`
    entries is reduced on its own and the numbers are those of one call. ``pieces`` is
    emptied (a file's pieces are let go).
    """
    columns = [list(column) for column in zip(*pieces, strict=True)]
    pieces.clear()
    fields = []
    for i, column in enumerate(columns):
        fields.append(np.concatenate(column))
        columns[i] = column = None  # the pieces of a field are let go once it is joined
    groups = min(max(workers.threads, -(-order.size // _MERGE_GROUP)), starts.size)
    first_run = np.linspace(0, starts.size, groups + 1).astype(np.int64)
    rows = np.append(starts, order.size)[first_run]  # each group's rows in ``order``

    def group(g: int) -> Moments:
        picked = order[rows[g] : rows[g + 1]]
        return reduce_runs(Moments(*(f[picked] for f in fields)), starts[first_run[g] : first_run[g + 1]] - rows[g])

    return concat(list(workers.map(group, range(groups))))


def _chunk_partials(
    table: pa.Table, key_column: str, numeric: tuple[str, ...]
) -> tuple[list[str], int, str, Moments | None]:
    """One chunk of a long table: its keys, null-key rows, key kind, and each key's moments (``None``: no keys)."""
    values = [to_float64(table.column(name), name) for name in numeric]
    names, order, starts, nulls, kind = split_by_key(table, key_column)
    if not names:
        return names, nulls, kind, None
    ordered = [v[order] for v in values]  # x, y (, weights) grouped by key
    return names, nulls, kind, segment_moments(*ordered[:2], starts, *ordered[2:])


class ReadKeyedPartsFn(_ReadingFn):
    """Reads files of a long table into per-key partial moments, keyed by shard.

    Each file is streamed a bounded chunk at a time; its rows are split by key with
    vectorized Arrow/numpy calls, on ``config.read_threads`` threads while the next
    chunk is read (results in chunk order, so the numbers are those of one thread).
    Rows with a null key are counted and yielded as an ``int``. An unreadable file
    becomes a ``failed`` entry named by its path.

    Args:
        config: The job's configuration.
    """

    def __init__(self, config: JobConfig) -> None:
        super().__init__(config.read_threads)
        self._config = config

    def process(self, paths: list[str]) -> Iterator[tuple[int, Partials] | int]:
        """Yield ``(shard, Partials)`` for the keys of the batch's files, then the null-key count."""
        config = self._config
        numeric = config.columns
        columns = [config.key_column, *numeric]
        layout = input_layout(config.input, config.output)
        workers = self.workers
        keys, kinds, parts, pieces, bad, null_rows = [], [], [], [], [], 0
        for path in paths:
            file_keys, file_pieces, file_nulls, kind = [], [], 0, "text"
            try:
                with closing(iter_tables(path, columns, dictionary=(config.key_column,))) as chunks:
                    for names, nulls, chunk_kind, moments in workers.map(
                        lambda table: _chunk_partials(table, config.key_column, numeric), chunks
                    ):
                        file_nulls, kind = file_nulls + nulls, chunk_kind  # the file's kind: its last chunk's
                        if moments is not None:
                            file_keys.extend(names)
                            file_pieces.append(moments)
            except DatasetError as error:
                reason = f"file could not be read, its rows are in no dataset: {error}"
                bad.append((layout.relative(path), path, path, reason))
                continue
            null_rows += file_nulls  # only the rows of files that could be read
            if len(file_pieces) > 1 and not parquet.FAST_PATHS:  # the reference: sort the ids as text
                names = np.array(file_keys, dtype=object)
                order = np.argsort(names.astype(str), kind="stable")
                sorted_names = names[order]
                starts = np.flatnonzero(np.append(True, sorted_names[1:] != sorted_names[:-1]))
                file_pieces = [reduce_runs(concat(file_pieces).take(order), starts)]
                file_keys = sorted_names[starts].tolist()
            elif len(file_pieces) > 1:  # the same key in several chunks of one file: merge them, in chunk order
                encoded = pc.dictionary_encode(pa.array(file_keys, pa.string()))
                codes = encoded.indices.to_numpy()
                order = stable_order(codes, len(encoded.dictionary))
                sorted_codes = codes[order]
                starts = np.flatnonzero(np.diff(sorted_codes, prepend=-1))
                file_pieces = [_merged_runs(file_pieces, order, starts, workers)]
                file_keys = encoded.dictionary.take(pa.array(sorted_codes[starts])).to_pylist()
            keys.extend(file_keys)
            kinds.extend([kind] * len(file_keys))
            parts.extend([path] * len(file_keys))
            pieces.extend(file_pieces)
        if keys or bad:
            moments = concat(pieces) if pieces else segment_moments(np.zeros(0), np.zeros(0), np.zeros(0, np.int64))
            sources = (config.input,) * len(keys)
            yield from _by_shard(Partials(tuple(keys), sources, tuple(parts), moments, tuple(bad), tuple(kinds)))
        if null_rows:
            yield null_rows


class ReadKeyedRowsFn(beam.DoFn):
    """Reads one file of a long table and yields ``(key, KeyedChunk)`` per key (``rows`` form).

    Rows with a null key yield one ``int`` (their count).
    """

    def __init__(self, key_column: str, x_column: str, y_column: str, weight_column: str | None = None) -> None:
        self._columns = (key_column, x_column, y_column, weight_column)

    def process(self, path: str) -> Iterator[tuple[str, KeyedChunk] | int]:
        """Yield the file's chunks keyed by dataset id, then its null-key count."""
        chunks, null_rows = read_keyed(path, *self._columns)
        for chunk in chunks:
            yield chunk.key, chunk
        if null_rows:
            yield null_rows
