"""Reading committed partitions of a local output table (for the reporting tools).

A table is ``TABLE_DIR/run_date=YYYY-MM-DD/*.parquet`` plus ``_manifest.json``, as
:mod:`pipeline.table.write` commits it. These helpers read it back with pyarrow; they need
neither Beam nor TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["MissingError", "find_partition", "load_partition", "previous_partition", "run_dates"]

_PREFIX = "run_date="


class MissingError(Exception):
    """Something the user named does not exist; one line for stderr."""


def run_dates(table: Path) -> list[str]:
    """Return the dates of the table's ``run_date=*`` folders, oldest first.

    Raises:
        MissingError: if the table directory does not exist.
    """
    if not table.is_dir():
        raise MissingError(f"no such table directory: {table}")
    return sorted(path.name[len(_PREFIX) :] for path in table.glob(f"{_PREFIX}*") if path.is_dir())


def find_partition(table: Path, run_date: str | None) -> Path:
    """Return ``table/run_date=D``, or the latest ``run_date=*`` folder when ``run_date`` is None.

    Raises:
        MissingError: if the table or the partition does not exist.
    """
    dates = run_dates(table)
    if run_date is not None:
        if run_date not in dates:
            raise MissingError(f"no partition run_date={run_date} in {table}")
        return table / f"{_PREFIX}{run_date}"
    if not dates:
        raise MissingError(f"no run_date=* partition in {table}")
    return table / f"{_PREFIX}{dates[-1]}"


def previous_partition(folder: Path) -> Path | None:
    """Return the partition of the latest run date before ``folder``'s, in the same table, or None."""
    date = folder.name[len(_PREFIX) :]
    earlier = [other for other in run_dates(folder.parent) if other < date]
    return folder.parent / f"{_PREFIX}{earlier[-1]}" if earlier else None


def load_partition(folder: Path) -> tuple[list[dict], dict | None]:
    """Return the partition's rows sorted by dataset, and its manifest (None if absent).

    Raises:
        MissingError: if the folder holds no Parquet file.
    """
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise MissingError(f"no Parquet files in {folder}")
    rows = pa.concat_tables([pq.read_table(path) for path in files]).to_pylist()
    manifest_path = folder / "_manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else None
    return sorted(rows, key=lambda row: row["dataset"]), manifest
