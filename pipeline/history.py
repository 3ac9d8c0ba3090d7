"""The table's history: fingerprints of a run's inputs and the rows of an earlier run.

``--incremental`` and ``--warm_start`` look back at the *previous partition*: the
latest committed ``run_date=D`` of the output table with D on or before this run's
date (a rerun of a date looks at that date's committed run). Every run records, next
to its manifest, ``_fingerprints.arrow``: one fingerprint per dataset, a hash of
the fit's settings and of every input file's path, size and modification time (on
object stores, the object's update time). A dataset whose fingerprint is unchanged
and whose previous row is not ``failed`` can reuse that row instead of being refit.

Everything goes through Beam's ``FileSystems``, so tables on ``gs://`` work too.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipeline.options import JobConfig
from pipeline.table import MANIFEST, SCHEMA

__all__ = ["FINGERPRINTS", "PreviousRun", "fingerprint", "load_previous", "settings_key", "write_fingerprints"]

# Arrow IPC, not Parquet: globs like run_date=*/*.parquet must not pick it up as table data.
FINGERPRINTS = "_fingerprints.arrow"
# column grouping: one fingerprint for the whole input, stored under this id
WHOLE_INPUT = "*"


def settings_key(config: JobConfig) -> str:
    """What, besides the data, decides a dataset's row: columns, grouping and fit settings."""
    fit = config.fit
    parts = [config.x_column, config.y_column, config.group_by, config.key_column or "", repr(fit)]
    return json.dumps(parts)


def fingerprint(settings: str, files: list[tuple[str, int, float]]) -> str:
    """A short hash of the fit settings and of every file's (path, size, modification time)."""
    digest = hashlib.sha256(settings.encode("utf-8"))
    for path, size, modified in sorted(files):
        digest.update(f"\0{path}\0{size}\0{modified!r}".encode())
    return digest.hexdigest()[:32]


def write_fingerprints(folder: str, fingerprints: dict[str, str]) -> None:
    """Write ``dataset → fingerprint`` as ``folder/_fingerprints.arrow``."""
    table = pa.table({"dataset": list(fingerprints), "fingerprint": list(fingerprints.values())})
    buffer = io.BytesIO()
    with pa.ipc.new_file(buffer, table.schema) as writer:
        writer.write_table(table)
    handle = FileSystems.create(FileSystems.join(folder, FINGERPRINTS))
    try:
        handle.write(buffer.getvalue())
    finally:
        handle.close()


@dataclass(frozen=True)
class PreviousRun:
    """The previous partition: its date, rows and input fingerprints.

    Attributes:
        run_date: The partition's date.
        rows: Its output rows (:data:`pipeline.table.SCHEMA`).
        fingerprints: ``dataset → fingerprint`` (empty for runs that recorded none).
    """

    run_date: str
    rows: pa.Table
    fingerprints: dict[str, str]

    def reused_rows(self, datasets: list[str], run_id: str) -> pa.Table:
        """The previous rows of ``datasets``, relabelled as reused by run ``run_id``.

        ``reused_from`` keeps the date the numbers were computed: a row reused twice
        still names the run that fitted it.
        """
        rows = self.rows.filter(pc.is_in(self.rows.column("dataset"), pa.array(datasets, pa.string())))
        origin = pc.fill_null(rows.column("reused_from"), self.run_date)
        rows = rows.set_column(rows.schema.get_field_index("reused_from"), "reused_from", origin)
        run_ids = pa.array([run_id] * rows.num_rows, pa.string())
        return rows.set_column(rows.schema.get_field_index("run_id"), "run_id", run_ids).cast(SCHEMA)

    def starts(self) -> dict[str, tuple[float, float]]:
        """``dataset → (w, b)`` of every previous row that has numbers (for ``--warm_start``)."""
        names, ws, bs = (self.rows.column(c).to_pylist() for c in ("dataset", "w", "b"))
        return {name: (w, b) for name, w, b in zip(names, ws, bs, strict=True) if w is not None and b is not None}


def _committed_dates(output: str) -> list[str]:
    prefix = "run_date="
    found = FileSystems.match([FileSystems.join(output, f"{prefix}*", MANIFEST)])[0].metadata_list
    dates = []
    for meta in found:
        folder = meta.path[: -len(MANIFEST) - 1]
        name = folder.rstrip("/").rsplit("/", 1)[-1]
        if name.startswith(prefix):
            dates.append(name[len(prefix) :])
    return sorted(dates)


def load_previous(config: JobConfig) -> PreviousRun | None:
    """Read the latest committed partition dated on or before ``config.run_date``.

    Returns:
        The previous run, or ``None`` when the table has no such partition yet.
    """
    dates = [d for d in _committed_dates(config.output) if d <= config.run_date]
    if not dates:
        return None
    folder = FileSystems.join(config.output, f"run_date={dates[-1]}")
    files = sorted(m.path for m in FileSystems.match([FileSystems.join(folder, "*.parquet")])[0].metadata_list)
    tables = []
    for path in files:
        with FileSystems.open(path) as handle:
            table = pq.read_table(io.BytesIO(handle.read()))
        for field in SCHEMA:  # partitions written before a column existed
            if field.name not in table.column_names:
                table = table.append_column(field, pa.nulls(table.num_rows, field.type))
        tables.append(table.select(SCHEMA.names).cast(SCHEMA))
    rows = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    fingerprints: dict[str, str] = {}
    marks = FileSystems.join(folder, FINGERPRINTS)
    if FileSystems.exists(marks):
        with FileSystems.open(marks) as handle:
            table = pa.ipc.open_file(io.BytesIO(handle.read())).read_all()
        fingerprints = dict(zip(*(table.column(c).to_pylist() for c in ("dataset", "fingerprint")), strict=True))
    return PreviousRun(dates[-1], rows, fingerprints)
