"""Reading x, y (and a grouping key) from Parquet files with pyarrow.

Every path is opened through Beam's ``FileSystems``, so the same code reads local
files, ``gs://`` and ``s3://``. Only the needed columns are read. Integer and float
columns of any width come back as float64 numpy arrays with nulls as NaN (integers
beyond 2**53 rounded to the nearest float64, ties to even); anything else is a
:class:`DatasetError` with a one-line message that ends up in the output row.

Grouping keys (``--group_by column:NAME``) become dataset ids by :func:`key_ids`: one
dataset per distinct typed value, with an id that reads back as that value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline.config.errors import one_line

__all__ = [
    "DatasetError",
    "KeyedChunk",
    "iter_columns",
    "iter_tables",
    "iter_xy",
    "key_ids",
    "open_parquet",
    "read_keyed",
    "read_table",
    "read_xy",
    "split_by_key",
    "stable_order",
    "to_float64",
]

# Rows per chunk when a file is streamed (two float64 columns: 16 MiB a chunk).
CHUNK_ROWS = 1 << 20

# The fast paths (a plain OSFile for local files, no cast of float64 columns, keys read
# dictionary-encoded and radix-sorted) give the same arrays as the plain reads; tests
# turn them off to compare whole output tables with the reference reads.
FAST_PATHS = True
_FLOAT64 = pa.float64()


class DatasetError(Exception):
    """A dataset (or file) that cannot be fitted; the message is one line for the user."""


@dataclass(frozen=True)
class KeyedChunk:
    """The rows of one key found in one file (``--group_by column:NAME``).

    Attributes:
        key: The key's value as text (the dataset id, see :func:`key_ids`).
        path: The file the rows came from; chunks are concatenated in path order.
        x: float64 x values, nulls as NaN.
        y: float64 y values, nulls as NaN.
        kind: The key's kind (``text``, ``integer``, ``float``, ...): keys of different
            kinds are different datasets even when their ids are the same text.
        w: float64 row weights (nulls as NaN), or ``None`` when unweighted.
    """

    key: str
    path: str
    x: np.ndarray
    y: np.ndarray
    kind: str = "text"
    w: np.ndarray | None = None


def _open_local(source: str, stack: contextlib.ExitStack) -> tuple[pq.ParquetFile, pa.NativeFile] | None:
    """Open a local Parquet file through a plain ``OSFile``: the file and its handle, or ``None``.

    Handing pyarrow an open file skips its filesystem resolution, which costs about as
    much as reading a small file. The bytes read are the same. Any failure returns
    ``None``, and the caller opens the path as before, so that an unreadable file
    fails with exactly the same message.
    """
    try:
        handle = stack.enter_context(pa.OSFile(source))
        return stack.enter_context(pq.ParquetFile(handle)), handle
    except Exception:  # noqa: BLE001 (the plain open below raises the error the user sees)
        return None


def _read_small_local(path: str, columns: list[str], most_rows: int) -> pa.Table | None:
    """A small, sound local file read in one go with nothing around it, or ``None``.

    Thousands of small files make the wrapping of :func:`open_parquet` (an exit stack,
    a context manager, a generator) a third of each file's cost. ``None`` — a remote
    path, a file with more than ``most_rows`` rows, any problem at all — sends the file
    through :func:`open_parquet`, which reads it (again) and raises the usual error.
    """
    if not FAST_PATHS or FileSystems.get_scheme(path) not in (None, "file"):
        return None
    try:
        with pa.OSFile(path[len("file://") :] if path.startswith("file://") else path) as handle:
            parquet = pq.ParquetFile(handle)
            names = parquet.schema_arrow.names
            if parquet.metadata.num_rows > most_rows or any(names.count(name) != 1 for name in columns):
                return None
            return parquet.read(columns=columns, use_threads=False)
    except Exception:  # noqa: BLE001 (open_parquet raises the error the user sees)
        return None


@contextlib.contextmanager
def open_parquet(
    path: str, columns: list[str], dictionary: tuple[str, ...] = (), stream_over: int | None = None
) -> Iterator[pq.ParquetFile]:
    """Open a Parquet file for reading ``columns``, checking that they exist.

    Text columns named in ``dictionary`` (which must be among ``columns``) are read
    dictionary-encoded, as Parquet stores them: a grouping key, much faster than
    decoding every row's text. A file of more than ``stream_over`` rows (if given) is
    opened to be streamed: without pyarrow's pre-buffering, which would hold every row
    group of the file in memory at once.

    Local files are opened by pyarrow directly (its fastest entry point); any other
    path goes through Beam's ``FileSystems``, so ``gs://`` and ``s3://`` work too.

    Raises:
        DatasetError: if the file is empty, not Parquet, lacks a column or holds one twice.
    """
    scheme = FileSystems.get_scheme(path)
    with contextlib.ExitStack() as stack:
        opened = None
        if scheme in (None, "file"):
            source = path[len("file://") :] if scheme == "file" else path
            opened = _open_local(source, stack) if FAST_PATHS else None
        else:
            source = stack.enter_context(FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED))
        if opened is None:
            try:
                parquet = stack.enter_context(pq.ParquetFile(source))
            except (pa.ArrowInvalid, OSError) as error:
                raise DatasetError(f"not a readable Parquet file: {one_line(error)}") from error
        else:
            parquet, source = opened
        names = parquet.schema_arrow.names
        missing = [name for name in columns if name not in names]
        if missing:
            shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
            raise DatasetError(f"missing column {', '.join(map(repr, missing))} (columns: {shown or 'none'})")
        for name in columns:
            if names.count(name) > 1:
                raise DatasetError(
                    f"column {name!r} appears {names.count(name)} times in the file; a column must be unique"
                )
        streamed = stream_over is not None and parquet.metadata.num_rows > stream_over
        dictionary = dictionary if FAST_PATHS else ()
        if dictionary or streamed:  # the same file again, its footer already parsed
            parquet = stack.enter_context(
                pq.ParquetFile(
                    source, metadata=parquet.metadata, read_dictionary=list(dictionary), pre_buffer=not streamed
                )
            )
        yield parquet


def read_table(path: str, columns: list[str], dictionary: tuple[str, ...] = ()) -> pa.Table:
    """Read ``columns`` of the Parquet file at ``path`` (any Beam filesystem).

    Text columns in ``dictionary`` arrive dictionary-encoded.

    Raises:
        DatasetError: if the file is empty, not Parquet, or lacks a column.
    """
    with open_parquet(path, columns, dictionary) as parquet:
        try:
            return parquet.read(columns=columns)
        except (pa.ArrowException, OSError) as error:
            raise DatasetError(f"could not read Parquet data: {one_line(error)}") from error


def iter_tables(
    path: str, columns: list[str], chunk_rows: int | None = None, dictionary: tuple[str, ...] = ()
) -> Iterator[pa.Table]:
    """Yield ``columns`` of a Parquet file in pieces of at most about ``chunk_rows`` rows.

    A small file is one read; a large one is streamed record batch by record batch, so
    memory stays bounded whatever the file's size. ``chunk_rows`` defaults to
    :data:`CHUNK_ROWS`; a streamed file comes in pieces of exactly ``chunk_rows`` rows
    (the last one shorter), wherever its row groups end. Text columns in ``dictionary``
    arrive dictionary-encoded (a streamed piece may hold several dictionaries).

    Raises:
        DatasetError: if the file is unreadable or lacks a column.
    """
    chunk_rows = chunk_rows or CHUNK_ROWS
    table = None if dictionary else _read_small_local(path, columns, chunk_rows)
    if table is not None:
        yield table
        return
    with open_parquet(path, columns, dictionary, chunk_rows) as parquet:
        try:
            if parquet.metadata.num_rows <= chunk_rows:
                yield parquet.read(columns=columns, use_threads=False)  # small: threads cost more than they save
                return
            yield from _exact_chunks(
                parquet.iter_batches(batch_size=chunk_rows, columns=columns, use_threads=False), chunk_rows
            )
        except (pa.ArrowException, OSError) as error:
            raise DatasetError(f"could not read Parquet data: {one_line(error)}") from error


def _exact_chunks(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """The rows of ``batches`` in tables of exactly ``rows`` rows, the last one shorter.

    A dictionary-encoded column is cut at every row group (a new dictionary), so the
    pieces pyarrow streams depend on the file's row groups; these do not, and a file's
    chunks (and so the order in which their moments merge) are the same either way.
    """
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending)


def small_columns(path: str, names: tuple[str, ...]) -> tuple[np.ndarray, ...] | None:
    """What :func:`iter_columns` yields for a small, sound local file (one chunk), or ``None``.

    ``None`` for anything else (remote, more than :data:`CHUNK_ROWS` rows, any problem):
    :func:`iter_columns` then reads the file, or names what is wrong with it.
    """
    table = _read_small_local(path, list(names), CHUNK_ROWS)
    if table is None:
        return None
    try:
        return tuple(to_float64(table.column(name), name) for name in names)
    except DatasetError:
        return None


def iter_columns(path: str, names: tuple[str, ...]) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield a file's numeric columns (x, y and the weights, say) as float64, a bounded chunk at a time.

    Raises:
        DatasetError: for an unreadable file, a missing or non-numeric column.
    """
    for table in iter_tables(path, list(names)):
        yield tuple(to_float64(table.column(name), name) for name in names)


def iter_xy(path: str, x_column: str, y_column: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield a file's x and y as float64 (nulls as NaN), a bounded chunk at a time.

    Raises:
        DatasetError: for an unreadable file, a missing or non-numeric column.
    """
    yield from iter_columns(path, (x_column, y_column))


def to_float64(column: pa.ChunkedArray, name: str) -> np.ndarray:
    """Return a numeric column as float64 numpy, nulls as NaN.

    Integers of any width are converted with float64 rounding: a value beyond 2**53
    (epoch nanoseconds, 64-bit ids) becomes the nearest float64, ties to even, exactly
    as Python's ``float(int)`` and numpy's ``astype(float)`` round it.

    Raises:
        DatasetError: if the column is not numeric (integer, float, decimal or all-null).
    """
    kind = column.type
    if kind == _FLOAT64 and FAST_PATHS:  # already float64: the cast would return the same values
        return column.to_numpy()
    if not (
        pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind) or pa.types.is_null(kind)
    ):
        raise DatasetError(f"column {name!r} has type {kind}; expected integer or floating point")
    try:  # integer -> float64 is only "unsafe" in that it rounds: that rounding is the documented conversion
        return pc.cast(column, pa.float64(), safe=not pa.types.is_integer(kind)).to_numpy()
    except pa.ArrowException as error:
        raise DatasetError(f"column {name!r} cannot be read as float64: {one_line(error)}") from error


def read_xy(path: str, x_column: str, y_column: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one file's x and y columns as float64 (nulls as NaN).

    Raises:
        DatasetError: for an unreadable file, a missing or non-numeric column.
    """
    table = read_table(path, [x_column, y_column])
    return to_float64(table.column(x_column), x_column), to_float64(table.column(y_column), y_column)


def _kind(kind: pa.DataType) -> str:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return "text"
    if pa.types.is_integer(kind):
        return "integer"
    if pa.types.is_floating(kind):
        return "float"
    return "boolean" if pa.types.is_boolean(kind) else str(kind)


def key_ids(column: pa.ChunkedArray, name: str) -> tuple[pa.Array, str]:
    """The dataset id of every row's key, and the key's kind.

    One dataset per distinct typed value, with an id that reads back as that value:

    * text: the text itself;
    * integers of any width: decimal digits (``42``, ``-7``);
    * floats: the shortest text that reads back as the same value in the column's
      own width, always with a ``.`` or an exponent (``1.0``, ``0.1``, ``1e+16``,
      ``inf``); ``-0.0`` and ``0.0`` are one value, ``0.0``; NaN is no value, so a NaN
      key is a null key (counted, not fitted);
    * booleans ``true``/``false``; anything else (dates, decimals, ...) Arrow's text.

    Keys of different kinds are different datasets even when their ids read the same
    (the integer 1 and the text "1"): the kind travels with the rows, and a dataset id
    shared by two kinds fails as one ``failed`` row.

    Returns:
        ``(ids, kind)``: a string array with one id per row (null for a null or NaN key).

    Raises:
        DatasetError: if the key cannot be read as text.
    """
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    kind = column.type
    try:
        if not pa.types.is_floating(kind):
            return pc.cast(column, pa.string()).combine_chunks(), _kind(kind)
        encoded = pc.dictionary_encode(column).combine_chunks()
        values = encoded.dictionary.to_numpy(zero_copy_only=False)
        values = values + values.dtype.type(0)  # -0.0 + 0.0 is 0.0: one key
        texts = [None if np.isnan(value) else str(value) for value in values]
        return pa.array(texts, pa.string()).take(encoded.indices), "float"
    except pa.ArrowException as error:
        raise DatasetError(f"key column {name!r} cannot be read as text: {one_line(error)}") from error


def _codes_directly(column: pa.ChunkedArray) -> tuple[pa.Array, pa.Array, str] | None:
    """Integer, text and dictionary-of-text keys: ``(codes, distinct values, kind)`` without text per row.

    Encoding the typed values and turning only the distinct ones into ids gives the same
    datasets as :func:`key_ids` (for these types the text of a value is one-to-one);
    ``None`` for every other type, or a dictionary that is not a set of distinct values.
    """
    kind = column.type
    value = kind.value_type if pa.types.is_dictionary(kind) else kind
    if not (pa.types.is_integer(value) or pa.types.is_string(value) or pa.types.is_large_string(value)):
        return None
    if len(column) == 0 or column.num_chunks == 0:
        return None
    if pa.types.is_integer(value) and pa.types.is_dictionary(kind):
        return None
    encoded = (column if pa.types.is_dictionary(kind) else pc.dictionary_encode(column)).combine_chunks()
    values = encoded.dictionary
    if values.null_count or pc.count_distinct(values).as_py() != len(values):
        return None
    return encoded.indices, values, _kind(value)


def stable_order(codes: np.ndarray, distinct: int) -> np.ndarray:
    """``np.argsort(codes, kind="stable")`` for codes in ``[-1, distinct)``, by radix sorts of 16-bit digits.

    numpy radix-sorts 16-bit keys (~6x faster than its merge sort); beyond 32,767
    distinct keys, two stable passes (low digit, then high) give the same order.
    """
    if distinct < np.iinfo(np.int16).max:
        return np.argsort(codes.astype(np.int16), kind="stable")
    shifted = (codes + 1).astype(np.uint32)  # null keys (-1) first, as in the plain sort
    order = np.argsort((shifted & 0xFFFF).astype(np.uint16), kind="stable")
    return order[np.argsort((shifted[order] >> 16).astype(np.uint16), kind="stable")]


def split_by_key(table: pa.Table, key_column: str) -> tuple[list[str], np.ndarray, np.ndarray, int, str]:
    """Group a table's rows by key without a Python loop over rows.

    The split is vectorized (dictionary-encode the keys, one stable sort of the codes);
    rows keep their order within a key. Ids are those of :func:`key_ids`.

    Returns:
        ``(names, order, starts, null_rows, kind)``: the distinct non-null key ids, a
        row order that puts each key's rows together (null keys dropped), where each
        key's rows start in that order, how many rows had a null (or NaN) key, and the
        key's kind.

    Raises:
        DatasetError: if the key cannot be read as text.
    """
    column = table.column(key_column)
    direct = _codes_directly(column) if FAST_PATHS else None
    if direct is not None:
        indices, values, kind = direct
        dictionary = pc.cast(values, pa.string()).to_pylist()
    else:
        keys, kind = key_ids(column, key_column)
        encoded = pc.dictionary_encode(keys)
        indices, dictionary = encoded.indices, encoded.dictionary.to_pylist()
    codes = pc.fill_null(indices, -1).to_numpy()
    null_rows = int(np.count_nonzero(codes < 0))
    if FAST_PATHS:
        order = stable_order(codes, len(dictionary))[null_rows:]
    else:
        order = np.argsort(codes.astype(np.int16) if len(dictionary) < 32767 else codes, kind="stable")[null_rows:]
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.diff(sorted_codes, prepend=-2))
    names = [dictionary[code] for code in sorted_codes[starts].tolist()]
    return names, order, starts, null_rows, kind


def read_keyed(
    path: str, key_column: str, x_column: str, y_column: str, weight_column: str | None = None
) -> tuple[list[KeyedChunk], int]:
    """Read one file of a long table and split its rows by key (``--loss_form rows``).

    Returns:
        The chunks, one per distinct non-null key in the file, and the number of rows
        whose key was null (they belong to no dataset).

    Raises:
        DatasetError: for an unreadable file, a missing or non-numeric column.
    """
    numeric = [x_column, y_column] + ([weight_column] if weight_column else [])
    table = read_table(path, [key_column, *numeric], (key_column,))
    x, y, *w = (to_float64(table.column(name), name) for name in numeric)
    names, order, starts, null_rows, kind = split_by_key(table, key_column)
    ends = np.append(starts[1:], order.size)
    chunks = [
        KeyedChunk(name, path, x[order[start:end]], y[order[start:end]], kind, w[0][order[start:end]] if w else None)
        for name, start, end in zip(names, starts.tolist(), ends.tolist(), strict=True)
    ]
    return chunks, null_rows
