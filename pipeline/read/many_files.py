"""Many small local Parquet files read in one call by DuckDB's reader (optional: ``tapefit[fast]``).

Opening files one by one with pyarrow costs about 0.3 ms a file in a run, most of it
fixed work per file; DuckDB reads a whole list of files in C++, outside the GIL, for
about half of that, checks included. :func:`read_many` reads a batch's files that way
when DuckDB is installed, and only those for which the arrays are certain to be the
ones pyarrow gives:

* local files (a remote path goes through Beam's ``FileSystems`` and pyarrow) whose
  names hold no glob character (DuckDB would read ``a[1].parquet`` as ``a1.parquet``);
* at most :data:`pipeline.read.parquet.CHUNK_ROWS` rows (bigger files are streamed in
  chunks, and their chunks are what the moments are merged from);
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

import threading
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from pipeline.read import parquet

__all__ = ["QUERY_ROWS", "available", "read_many"]

# Most rows one query reads (x, y and weights as float64: 96 MiB); a batch with more
# is read in several queries.
QUERY_ROWS = 1 << 22
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


def read_many(paths: Sequence[str], columns: Sequence[str]) -> dict[str, tuple[np.ndarray, ...]]:
    """The float64 columns (nulls as NaN) of those of ``paths`` that DuckDB can read here, by path.

    Args:
        paths: Parquet files (any Beam path; only local ones are read here).
        columns: The numeric columns to read (x, y and perhaps the weights), in order.

    Returns:
        For each file read, one array per column, as
        :func:`pipeline.read.parquet.iter_columns` would give in one chunk. Files not
        in it are for the caller to read as usual.
    """
    if not parquet.FAST_PATHS or not paths:
        return {}
    local = {}
    for path in paths:
        name = path[len("file://") :] if path.startswith("file://") else path
        if FileSystems.get_scheme(path) in (None, "file") and not _GLOB.intersection(name):
            local[name] = path
    connection = _connect() if local else None
    if connection is None:
        return {}
    try:
        found: dict[str, tuple[np.ndarray, ...]] = {}
        for group in _plain_groups(connection, list(local), list(columns)):
            for name, arrays in _read(connection, group, list(columns)).items():
                found[local[name]] = arrays
        return found
    finally:
        connection.close()


def _failing_apart(files: list[str], run) -> list:  # noqa: ANN001 (a query on a list of files)
    """``[run(files)]``, the list halved until the files that make it fail stand alone (and are left out)."""
    try:
        return [run(files)]
    except Exception:  # noqa: BLE001 (any DuckDB error: pyarrow reads these files and names the problem)
        if len(files) == 1:
            return []
        half = len(files) // 2
        return _failing_apart(files[:half], run) + _failing_apart(files[half:], run)


def _plain_groups(connection, files: list[str], columns: list[str]) -> list[list[tuple[str, int]]]:  # noqa: ANN001
    """The files DuckDB may read, with their row counts, grouped by the physical types of ``columns``.

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
    groups: dict[tuple, list[tuple[str, int]]] = {}
    for name in files:  # in the caller's order
        signature = _signature(by_file.get(name, []), columns)
        if signature is not None:
            groups.setdefault(signature, []).append((name, by_file[name][0][6]))
    return list(groups.values())


def _signature(entries: list[tuple], columns: list[str]) -> tuple | None:
    """The physical types of ``columns`` in one file's schema entries named like them, or ``None`` if not plain."""
    if not entries or entries[0][6] > parquet.CHUNK_ROWS:
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
    """Read files of one type signature (with their row counts), a bounded number of rows a query."""
    quoted = ", ".join('"' + column.replace('"', '""') + '"' for column in columns)
    query = f"SELECT file_index, {quoted} FROM read_parquet($files)"  # noqa: S608 (names quoted, files bound)
    sizes = dict(files)

    def table(chunk: list[str]) -> tuple[list[str], pa.Table]:
        result = connection.sql(query, params={"files": chunk}).arrow()
        return chunk, result.read_all() if isinstance(result, pa.RecordBatchReader) else result

    found = {}
    for run in _row_bounded(files):
        for chunk, data in _failing_apart(run, table):
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


def _row_bounded(files: list[tuple[str, int]]) -> list[list[str]]:
    """The file names cut into runs of at most :data:`QUERY_ROWS` rows each."""
    runs, run, held = [], [], 0
    for name, size in files:
        if run and held + size > QUERY_ROWS:
            runs.append(run)
            run, held = [], 0
        run.append(name)
        held += size
    return [*runs, run] if run else runs
