"""Reading committed partitions of a local output table (for the reporting tools).

A table is ``TABLE_DIR/run_date=YYYY-MM-DD/*.parquet`` plus ``_manifest.json``, as
:mod:`pipeline.table.write` commits it. The manifest is the commit point: a partition's
rows are exactly the data files its ``"files"`` list names, and any other file in the
folder (a stray copy, or the other run's files while an object store's commit moves the
new files in before deleting the old ones) is ignored. A folder without a manifest (a
table written before manifests, or by hand) is read as all its ``*.parquet`` files.
These helpers read it back with pyarrow; they need neither Beam nor TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["MissingError", "data_files", "find_partition", "load_partition", "previous_partition", "run_dates"]

_PREFIX = "run_date="
_MANIFEST = "_manifest.json"


class MissingError(Exception):
    """Something the user named does not exist, or cannot be read as a partition; one line for stderr."""


def _is_partition(folder: Path) -> bool:
    """A ``run_date=*`` folder that holds a partition: a manifest or (without one) a Parquet file."""
    return folder.is_dir() and ((folder / _MANIFEST).is_file() or any(folder.glob("*.parquet")))


def run_dates(table: Path) -> list[str]:
    """Return the dates of the table's partitions, oldest first.

    A ``run_date=*`` folder counts when it has a ``_manifest.json`` or, in tables
    written without manifests, a ``*.parquet`` file; an empty folder does not.

    Raises:
        MissingError: if the table directory does not exist.
    """
    if not table.is_dir():
        raise MissingError(f"no such table directory: {table}")
    return sorted(path.name[len(_PREFIX) :] for path in table.glob(f"{_PREFIX}*") if _is_partition(path))


def find_partition(table: Path, run_date: str | None) -> Path:
    """Return ``table/run_date=D``, or the latest partition when ``run_date`` is None.

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


def _read_manifest(folder: Path) -> dict | None:
    """The partition's manifest, or None if it has none.

    Raises:
        MissingError: if it is not a JSON object.
    """
    path = folder / _MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MissingError(f"{path} is not a tapefit manifest: {' '.join(str(error).split())}") from None
    if not isinstance(manifest, dict):
        raise MissingError(f"{path} is not a tapefit manifest: not a JSON object")
    return manifest


def data_files(folder: Path, manifest: dict | None) -> list[Path]:
    """The partition's data files: those the manifest lists, else every ``*.parquet`` file.

    Raises:
        MissingError: naming the first file the manifest lists that is missing.
    """
    names = manifest.get("files") if manifest else None
    if names is None:  # no manifest (or one without a file list): old tables
        return sorted(folder.glob("*.parquet"))
    files = [folder / name for name in names]
    for path in files:
        if not path.is_file():
            raise MissingError(f"{path} is missing, though {folder / _MANIFEST} lists it")
    return files


def load_partition(folder: Path) -> tuple[list[dict], dict | None]:
    """Return the partition's rows sorted by dataset, and its manifest (None if absent).

    The rows are read from the files the manifest lists (:func:`data_files`).

    Raises:
        MissingError: if the folder holds no data file, a listed file is missing, or
            the manifest is not JSON.
    """
    manifest = _read_manifest(folder)
    files = data_files(folder, manifest)
    if not files:
        raise MissingError(f"no Parquet files in {folder}")
    rows = pa.concat_tables([pq.read_table(path) for path in files]).to_pylist()
    return sorted(rows, key=lambda row: row["dataset"]), manifest
