"""Reading x, y (and a grouping key) from Parquet files with pyarrow.

Every path is opened through Beam's ``FileSystems``, so the same code reads local
files, ``gs://`` and ``s3://``. Only the needed columns are read. Integer and float
columns of any width come back as float64 numpy arrays with nulls as NaN; anything
else is a :class:`DatasetError` with a one-line message that ends up in the output row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

__all__ = ["DatasetError", "KeyedChunk", "one_line", "read_keyed", "read_table", "read_xy", "to_float64"]


class DatasetError(Exception):
    """A dataset (or file) that cannot be fitted; the message is one line for the user."""


@dataclass(frozen=True)
class KeyedChunk:
    """The rows of one key found in one file (``--group_by column:NAME``).

    Attributes:
        key: The key's value as a string (the dataset id).
        path: The file the rows came from; chunks are concatenated in path order.
        x: float64 x values, nulls as NaN.
        y: float64 y values, nulls as NaN.
    """

    key: str
    path: str
    x: np.ndarray
    y: np.ndarray


def read_table(path: str, columns: list[str]) -> pa.Table:
    """Read ``columns`` of the Parquet file at ``path``.

    Args:
        path: Any path Beam's ``FileSystems`` understands.
        columns: Columns to read; every one must exist.

    Returns:
        A table with exactly those columns.

    Raises:
        DatasetError: if the file is empty, not Parquet, or lacks a column.
    """
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        try:
            parquet = pq.ParquetFile(handle)
        except (pa.ArrowInvalid, OSError) as error:
            raise DatasetError(f"not a readable Parquet file: {one_line(error)}") from error
        names = parquet.schema_arrow.names
        missing = [name for name in columns if name not in names]
        if missing:
            shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
            raise DatasetError(f"missing column {', '.join(map(repr, missing))} (columns: {shown or 'none'})")
        try:
            return parquet.read(columns=columns)
        except (pa.ArrowException, OSError) as error:
            raise DatasetError(f"could not read Parquet data: {one_line(error)}") from error


def to_float64(column: pa.ChunkedArray, name: str) -> np.ndarray:
    """Return a numeric column as float64 numpy, nulls as NaN.

    Raises:
        DatasetError: if the column is not numeric (integer, float, decimal or all-null).
    """
    kind = column.type
    if not (
        pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind) or pa.types.is_null(kind)
    ):
        raise DatasetError(f"column {name!r} has type {kind}; expected integer or floating point")
    return pc.cast(column, pa.float64()).to_numpy()


def read_xy(path: str, x_column: str, y_column: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one file's x and y columns as float64 (nulls as NaN).

    Raises:
        DatasetError: for an unreadable file, a missing or non-numeric column.
    """
    table = read_table(path, [x_column, y_column])
    return to_float64(table.column(x_column), x_column), to_float64(table.column(y_column), y_column)


def read_keyed(path: str, key_column: str, x_column: str, y_column: str) -> tuple[list[KeyedChunk], int]:
    """Read one file of a long table and split its rows by key.

    The split is vectorized (dictionary-encode the key, one stable argsort); rows keep
    their file order within a key.

    Returns:
        The chunks, one per distinct non-null key in the file, and the number of rows
        whose key was null (they belong to no dataset).

    Raises:
        DatasetError: for an unreadable file, a missing or non-numeric column.
    """
    table = read_table(path, [key_column, x_column, y_column])
    x = to_float64(table.column(x_column), x_column)
    y = to_float64(table.column(y_column), y_column)
    try:
        keys = pc.cast(table.column(key_column), pa.string())
    except pa.ArrowException as error:
        raise DatasetError(f"key column {key_column!r} cannot be read as text: {one_line(error)}") from error
    encoded = pc.dictionary_encode(keys).combine_chunks()
    codes = pc.fill_null(encoded.indices, -1).to_numpy()
    null_rows = int(np.count_nonzero(codes < 0))
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.diff(sorted_codes, prepend=-2))
    ends = np.append(starts[1:], sorted_codes.size)
    names = encoded.dictionary.to_pylist()
    chunks = [
        KeyedChunk(names[sorted_codes[start]], path, x[order[start:end]], y[order[start:end]])
        for start, end in zip(starts, ends, strict=True)
        if sorted_codes[start] >= 0
    ]
    return chunks, null_rows


def one_line(message: object, limit: int = 300) -> str:
    """Return ``str(message)`` as one line of at most ``limit`` characters, for users."""
    text = " ".join(str(message).split()) or type(message).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
