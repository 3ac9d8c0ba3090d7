"""The non-tapefit contenders, each run in a fresh interpreter: DuckDB, a pyarrow read floor, numpy.

Usage: ``python -m benchmarks.baselines {duckdb,pyarrow,numpy} --input DIR --layout L --out FILE``
where ``L`` is ``file``, ``directory`` or ``column``. Writes per-dataset results (see
:mod:`benchmarks.results`) with the same dataset ids tapefit gives.

* ``duckdb``: one ``GROUP BY`` query with ``regr_slope``/``regr_intercept`` over every file,
  DuckDB's default thread count.
* ``pyarrow``: one thread reading the two columns of every file (``ParquetFile.read`` for the
  file layout, ``iter_batches`` streaming for the others); the floor any reader pays. It gives
  row counts only (for the column layout, one ``*`` row with the total).
* ``numpy``: the same reads plus the centred closed form per dataset, vectorized over keys with
  ``np.bincount`` (see :mod:`benchmarks.moments`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from benchmarks.moments import Moments
from benchmarks.results import ALL_ROWS, Fit, write_fits
from benchmarks.workloads import KEY_COLUMN, dataset_id, parquet_files

__all__ = ["BATCH_ROWS", "batches", "fit_duckdb", "fit_numpy", "main", "read_floor"]

BATCH_ROWS = 1_000_000
LAYOUTS = ("file", "directory", "column")


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def fit_duckdb(root: Path, layout: str) -> dict[str, Fit]:
    """Fit every dataset with one DuckDB ``GROUP BY`` query.

    Args:
        root: Input directory.
        layout: ``file``, ``directory`` or ``column``.

    Returns:
        id → Fit.
    """
    import duckdb

    base = str(root.resolve())
    group = {
        "file": "filename",
        "directory": r"regexp_replace(filename, '/[^/]*$', '')",
        "column": f"CAST({KEY_COLUMN} AS VARCHAR)",
    }[layout]
    source = f"read_parquet({_sql_string(base + '/**/*.parquet')}, filename = true)"
    query = f"SELECT {group} AS g, regr_slope(y, x), regr_intercept(y, x), count(*) FROM {source} GROUP BY g"
    rows = duckdb.connect().execute(query).fetchall()
    if layout == "directory":  # g is the directory: give it a dummy file name so ids come out right
        return {dataset_id(g + "/f", base, layout): Fit(w, b, n) for g, w, b, n in rows}
    if layout == "file":
        return {dataset_id(g, base, layout): Fit(w, b, n) for g, w, b, n in rows}
    return {g: Fit(w, b, n) for g, w, b, n in rows}


def batches(root: Path, layout: str, with_key: bool = False) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """Read every file's columns on one thread: whole files (file layout) or streamed batches.

    Args:
        root: Input directory.
        layout: ``file``, ``directory`` or ``column``.
        with_key: Also read the key column (column layout).

    Yields:
        (dataset id or, for the column layout, the file's path; column name → array).
    """
    base = str(root.resolve())
    columns = [KEY_COLUMN, "x", "y"] if with_key else ["x", "y"]
    for path in parquet_files(root):
        name = str(path.resolve())
        ident = name if layout == "column" else dataset_id(name, base, layout)
        reader = pq.ParquetFile(path)
        if layout == "file":
            parts = [reader.read(columns=columns, use_threads=False)]
        else:
            parts = reader.iter_batches(batch_size=BATCH_ROWS, columns=columns, use_threads=False)
        for part in parts:
            yield ident, {c: part.column(c) if c == KEY_COLUMN else part.column(c).to_numpy() for c in columns}


def read_floor(root: Path, layout: str) -> dict[str, Fit]:
    """Read x and y of every file and count rows: the cost of reading alone.

    Args:
        root: Input directory.
        layout: ``file``, ``directory`` or ``column``.

    Returns:
        id → Fit with row counts only (column layout: one :data:`~benchmarks.results.ALL_ROWS` row).
    """
    counts: dict[str, int] = {}
    for ident, cols in batches(root, layout):
        key = ALL_ROWS if layout == "column" else ident
        counts[key] = counts.get(key, 0) + cols["x"].size
    return {k: Fit(None, None, n) for k, n in counts.items()}


def fit_numpy(root: Path, layout: str) -> dict[str, Fit]:
    """Closed-form least squares (centred, float64) of every dataset, one read of each file.

    Args:
        root: Input directory.
        layout: ``file``, ``directory`` or ``column``.

    Returns:
        id → Fit.
    """
    moments, index = Moments(), {}
    for ident, cols in batches(root, layout, with_key=layout == "column"):
        if layout == "column":
            encoded = cols[KEY_COLUMN].dictionary_encode()
            to_global = np.array([index.setdefault(k, len(index)) for k in encoded.dictionary.to_pylist()])
            moments.add(to_global[encoded.indices.to_numpy()], cols["x"], cols["y"])
        else:
            moments.add(index.setdefault(ident, len(index)), cols["x"], cols["y"])
    w, b = moments.fit()
    return {k: Fit(float(w[i]), float(b[i]), int(moments.n[i])) for k, i in index.items()}


_CONTENDERS = {"duckdb": fit_duckdb, "pyarrow": read_floor, "numpy": fit_numpy}


def main(argv: list[str] | None = None) -> int:
    """Command line: run one baseline and write its results.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        Exit status 0.
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baselines", description=__doc__.split("\n")[0])
    parser.add_argument("contender", choices=sorted(_CONTENDERS))
    parser.add_argument("--input", type=Path, required=True, help="input directory")
    parser.add_argument("--layout", choices=LAYOUTS, required=True)
    parser.add_argument("--out", type=Path, required=True, help="results Parquet file to write")
    args = parser.parse_args(argv)
    write_fits(args.out, _CONTENDERS[args.contender](args.input, args.layout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
