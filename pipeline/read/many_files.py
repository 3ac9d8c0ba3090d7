"""Many small local Parquet files read in one call by DuckDB's reader (optional: ``tapefit[fast]``).

Opening small files one by one with pyarrow costs about 0.23 ms a file in a run, most
of it fixed work per file; DuckDB reads a whole list of files in C++, outside the GIL
and on every core, for about 0.16 ms a file, checks included. :func:`read_many` reads a batch's files that way
when DuckDB is installed, and only those for which the arrays are certain to be the
ones pyarrow gives:

* local files (a remote path goes through Beam's ``FileSystems`` and pyarrow) whose
  names hold no glob character (DuckDB would read ``a[1].parquet`` as ``a1.parquet``);
* at most :data:`SMALL_ROWS` rows (and :data:`SMALL_BYTES` on disk): the per-file
  cost DuckDB saves is what matters for small files; from about 8,000 rows a file on,
  pyarrow's decoding is the faster one (measured: 0.17 against 0.23 ms a file at 100
  rows, 1.6 against 0.9 ms at 50,000);
* every column named once, at the top level, with no other column whose name differs
  only in case (DuckDB matches names without regard to case);
* plain numbers: a ``DOUBLE`` or ``FLOAT``, or a signed ``INT32``/``INT64`` with no
  logical type but an integer width. Each query reads files of one such signature, so
  DuckDB never casts; the columns then go through the same
  :func:`~pipeline.read.parquet.to_float64` as pyarrow's.

Anything else (a corrupt file, a text column, decimals, a missing column, no DuckDB)
is simply not returned, and the caller reads it with pyarrow as before: the same
numbers, and the same one-line reason for a bad file. A query that fails is split in
two until the files that fail it are alone. DuckDB loads no extension: nothing is
downloaded, ever.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from pipeline.read import parquet

__all__ = ["ROWS_AHEAD", "SMALL_BYTES", "SMALL_ROWS", "available", "read_many"]

# Files of at most this many rows are read by DuckDB (never more than CHUNK_ROWS, the
# size at which pyarrow streams a file in chunks).
SMALL_ROWS = 8192

# Files bigger than this are not offered to DuckDB at all: such a file holds more than
# SMALL_ROWS rows of numbers (at most ~24 bytes a row) or many other columns, and
# pyarrow reads it no slower; asking DuckDB's metadata first cost 0.4 s on 1,000 files of 1 MB.
SMALL_BYTES = 512 << 10

# Most rows one call reads (x, y and weights as float64: 96 MiB): memory stays bounded
# however well a batch's files compress; the caller asks again for the files after.
ROWS_AHEAD = 1 << 22
_PLAIN_FLOATS = {"DOUBLE", "FLOAT"}
_PLAIN_INTEGERS = {"INT32", "INT64"}
_INTEGER_WIDTHS = {None, "INT_8", "INT_16", "INT_32", "INT_64"}
_GLOB = set("*?[]{}")  # DuckDB reads every name as a glob pattern: such a name could stand for other files
_SETTINGS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
_database = None  # one in-memory DuckDB per process; every read_many call takes its own cursor
_lock = threading.Lock()


def _connect():  # noqa: ANN202 (a duckdb.DuckDBPyConnection, or None without DuckDB)
    global _database
    with _lock:
        if _database is None:
            try:
                import duckdb
            except ImportError:
                _database = False
            else:
                _database = duckdb.connect(":memory:", config=_SETTINGS)
        return _database.cursor() if _database else None


def available() -> bool:
    """Whether DuckDB is installed here (``pip install tapefit[fast]``)."""
    connection = _connect()
    if connection is None:
        return False
    connection.close()
    return True


def read_many(paths: Sequence[str], columns: Sequence[str]) -> tuple[dict[str, tuple[np.ndarray, ...]], int]:
    """The float64 columns (nulls as NaN) of the first of ``paths`` that DuckDB can read here, by path.

    Files are taken in order until :data:`ROWS_AHEAD` rows (the first readable file
    always).

    Args:
        paths: Parquet files (any Beam path; only local ones are read here).
        columns: The numeric columns to read (x, y and perhaps the weights), in order.

    Returns:
        ``(found, tried)``: for each file read, one array per column, as
        :func:`pipeline.read.parquet.iter_columns` would give in one chunk; and how many
        of ``paths``, from the first, were considered. Those of them not in ``found``
        are for the caller to read as usual; the ones after, to ask for again.
    """
    names = [_local_name(path) for path in paths] if parquet.FAST_PATHS else []
    connection = _connect() if any(names) else None
    if connection is None:
        return {}, len(paths)
    try:
        plain = _plain_files(connection, list(dict.fromkeys(name for name in names if name)), list(columns))
        chosen: dict[tuple, list[tuple[str, int]]] = {}
        taken: dict[str, str] = {}  # DuckDB's name → the caller's path
        tried, held = 0, 0
        for path, name in zip(paths, names, strict=True):
            if name in plain and name not in taken:
                signature, rows = plain[name]
                if taken and held + rows > ROWS_AHEAD:
                    break
                chosen.setdefault(signature, []).append((name, rows))
                taken[name] = path
                held += rows
            tried += 1
        found = {}
        for group in chosen.values():
            for name, arrays in _read(connection, group, list(columns)).items():
                found[taken[name]] = arrays
        return found, tried
    finally:
        connection.close()


def _local_name(path: str) -> str | None:
    """The local file DuckDB would open for ``path``, or ``None``.

    ``None`` for a remote path, a file bigger than :data:`SMALL_BYTES`, or a name
    holding a glob character.
    """
    if FileSystems.get_scheme(path) not in (None, "file"):
        return None
    name = path[len("file://") :] if path.startswith("file://") else path
    if _GLOB.intersection(name):
        return None
    try:
        return name if os.path.getsize(name) <= SMALL_BYTES else None
    except OSError:  # gone or unreadable: pyarrow names the problem
        return None


def _failing_apart(files: list[str], run) -> list:  # noqa: ANN001 (a query on a list of files)
    """``[run(files)]``, the list halved until the files that make it fail stand alone (and are left out)."""
    try:
        return [run(files)]
    except Exception:  # noqa: BLE001 (any DuckDB error: pyarrow reads these files and names the problem)
        if len(files) == 1:
            return []
        half = len(files) // 2
        return _failing_apart(files[:half], run) + _failing_apart(files[half:], run)


def _plain_files(connection, files: list[str], columns: list[str]) -> dict[str, tuple[tuple, int]]:  # noqa: ANN001
    """The files DuckDB may read: their type signature (the physical types of ``columns``) and row count.

    Only the schema entries named like a column (in any case) are fetched. A column of
    that name nested in a struct looks like a top-level one here; reading it fails
    (DuckDB binds top-level names only), and the file is left to pyarrow then.
    """
    query = (
        "SELECT s.file_name, s.name, s.type, s.converted_type, s.logical_type, s.repetition_type, m.num_rows "
        "FROM parquet_schema($files) s JOIN parquet_file_metadata($files) m USING (file_name) "
        "WHERE list_contains($names, lower(s.name))"
    )
    names = sorted({column.lower() for column in columns})
    by_file: dict[str, list[tuple]] = {}
    for part in _failing_apart(
        files, lambda chunk: connection.execute(query, {"files": chunk, "names": names}).fetchall()
    ):
        for entry in part:
            by_file.setdefault(entry[0], []).append(entry)
    plain = {}
    for name, entries in by_file.items():
        signature = _signature(entries, columns)
        if signature is not None:
            plain[name] = (signature, entries[0][6])
    return plain


def _signature(entries: list[tuple], columns: list[str]) -> tuple | None:
    """The physical types of ``columns`` in one file's schema entries named like them, or ``None`` if not plain."""
    if not entries or entries[0][6] > min(SMALL_ROWS, parquet.CHUNK_ROWS):
        return None
    types = []
    for column in columns:
        same = [entry for entry in entries if entry[1].lower() == column.lower()]
        if len(same) != 1 or same[0][1] != column or same[0][5] == "REPEATED":
            return None
        _, _, kind, converted, logical, _, _ = same[0]
        plain_float = kind in _PLAIN_FLOATS and converted is None and logical is None
        plain_integer = kind in _PLAIN_INTEGERS and converted in _INTEGER_WIDTHS and _signed(logical)
        if not (plain_float or plain_integer):
            return None
        types.append((kind, converted))
    return tuple(types)


def _signed(logical: str | None) -> bool:
    return logical is None or (logical.startswith("IntType(") and logical.endswith("isSigned=1)"))


def _read(connection, files: list[tuple[str, int]], columns: list[str]) -> dict[str, tuple[np.ndarray, ...]]:  # noqa: ANN001
    """Read files of one type signature (with their row counts) in one query (halved if it fails)."""
    quoted = ", ".join('"' + column.replace('"', '""') + '"' for column in columns)
    query = f"SELECT file_index, {quoted} FROM read_parquet($files)"  # noqa: S608 (names quoted, files bound)
    sizes = dict(files)

    def table(chunk: list[str]) -> tuple[list[str], pa.Table]:
        result = connection.sql(query, params={"files": chunk}).arrow()
        return chunk, result.read_all() if isinstance(result, pa.RecordBatchReader) else result

    found = {}
    for chunk, data in _failing_apart([name for name, _ in files], table):
        index = data.column(0).to_numpy().astype(np.int64)
        counts = np.bincount(index, minlength=len(chunk)) if index.size else np.zeros(len(chunk), np.int64)
        in_order = not index.size or bool(np.all(np.diff(index) >= 0))
        if not in_order or counts.tolist() != [sizes[name] for name in chunk]:
            continue  # not each file's rows in order, or not all of them: left to pyarrow
        try:
            values = [parquet.to_float64(data.column(i + 1), column) for i, column in enumerate(columns)]
        except parquet.DatasetError:
            continue
        ends = np.cumsum(counts).tolist()
        for name, start, end in zip(chunk, [0, *ends[:-1]], ends, strict=True):
            found[name] = tuple(v[start:end] for v in values)
    return found
