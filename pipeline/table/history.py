"""The table's history: each run's input fingerprints, and the rows of an earlier run.

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

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from pipeline.config.settings import GroupBy, JobConfig
from pipeline.discover.fingerprints import WHOLE_INPUT
from pipeline.fit.result import Status
from pipeline.observe.counters import NAMESPACE
from pipeline.table.paths import MANIFEST, staging_dir
from pipeline.table.schema import SCHEMA

__all__ = [
    "FINGERPRINTS",
    "ForeignPartitionError",
    "PreviousRun",
    "TableHistory",
    "load_previous",
    "write_fingerprints",
]

# Arrow IPC, not Parquet: globs like run_date=*/*.parquet must not pick it up as table data.
FINGERPRINTS = "_fingerprints.arrow"
# Reused rows leave discovery in Arrow tables of at most this many rows.
_REUSED_PER_TABLE = 50_000


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


class ForeignPartitionError(ValueError):
    """A file of the previous partition that does not read as this table's rows; one line for the user."""


def _as_rows(path: str, table: pa.Table) -> pa.Table:
    """A previous partition's file as rows of :data:`SCHEMA` (columns it predates are null).

    Raises:
        ForeignPartitionError: naming the file and the first column that does not fit.
    """
    for field in SCHEMA:
        found = table.schema.get_all_field_indices(field.name)
        if not found:  # partitions written before a column existed
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
            continue
        problem = "appears more than once" if len(found) > 1 else None
        if problem is None:
            try:
                table.column(field.name).cast(field.type)
            except pa.ArrowException as error:
                kind = table.schema.field(field.name).type
                problem = f"has type {kind}, not {field.type} ({' '.join(str(error).split())[:120]})"
        if problem:
            raise ForeignPartitionError(
                f"the previous partition's file {path} is not a tapefit table: column {field.name!r} {problem}; "
                "move it out of the table or write to another --output"
            )
    return table.select(SCHEMA.names).cast(SCHEMA)


@dataclass(frozen=True)
class PreviousRun:
    """The previous partition: its date, rows and input fingerprints.

    Attributes:
        run_date: The partition's date.
        rows: Its output rows (:data:`pipeline.table.SCHEMA`).
        fingerprints: ``dataset → fingerprint`` (empty for runs that recorded none).
        null_key_rows: Rows its run skipped for a null key (column grouping), from its manifest.
    """

    run_date: str
    rows: pa.Table
    fingerprints: dict[str, str]
    null_key_rows: int = 0

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

    Raises:
        ForeignPartitionError: if one of its files is not a tapefit table (naming the
            file and the column).
    """
    dates = [d for d in _committed_dates(config.output) if d <= config.run_date]
    if not dates:
        return None
    folder = FileSystems.join(config.output, f"run_date={dates[-1]}")
    files = sorted(m.path for m in FileSystems.match([FileSystems.join(folder, "*.parquet")])[0].metadata_list)
    tables = []
    for path in files:
        with FileSystems.open(path) as handle:
            data = handle.read()
        try:
            table = pq.read_table(io.BytesIO(data))
        except (pa.ArrowException, OSError) as error:
            message = f"the previous partition's file {path} is not a readable Parquet file ({error})"
            raise ForeignPartitionError(" ".join(message.split())) from None
        tables.append(_as_rows(path, table))
    rows = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    fingerprints: dict[str, str] = {}
    marks = FileSystems.join(folder, FINGERPRINTS)
    if FileSystems.exists(marks):
        with FileSystems.open(marks) as handle:
            table = pa.ipc.open_file(io.BytesIO(handle.read())).read_all()
        fingerprints = dict(zip(*(table.column(c).to_pylist() for c in ("dataset", "fingerprint")), strict=True))
    with FileSystems.open(FileSystems.join(folder, MANIFEST)) as handle:
        null_key_rows = (json.loads(handle.read().decode("utf-8")).get("rows") or {}).get("null_key") or 0
    return PreviousRun(dates[-1], rows, fingerprints, null_key_rows)


class TableHistory:
    """The output table's history as discovery sees it (:class:`pipeline.discover.listing.History`).

    Records each run's input fingerprints in its staging folder, so they are committed
    with the partition, and with ``--incremental`` supplies the previous rows of the
    datasets whose fingerprints are unchanged.

    Args:
        config: The job's configuration (a Parquet table output).
    """

    def __init__(self, config: JobConfig) -> None:
        self._config = config

    def record(self, fingerprints: dict[str, str]) -> None:
        """Write this run's ``dataset → fingerprint`` beside its staged partition."""
        write_fingerprints(staging_dir(self._config), fingerprints)

    def reuse(self, items: list, fingerprints: dict[str, str]) -> Iterator[pa.Table | int]:
        """Yield the reused rows; return the items that still need a fit.

        A dataset is reused when its fingerprint is unchanged and its previous row is
        not ``failed``; with column grouping every key draws on every file, so reuse is
        all or nothing, and a full reuse also yields (as an ``int``) the previous run's
        count of null-key rows, which the same files still hold.
        """
        previous = load_previous(self._config)
        if previous is None or not previous.fingerprints:
            return items
        statuses = dict(zip(*(previous.rows.column(c).to_pylist() for c in ("dataset", "status")), strict=True))
        if self._config.group_by == GroupBy.COLUMN:
            if previous.fingerprints.get(WHOLE_INPUT) != fingerprints[WHOLE_INPUT]:
                return items
            reused, items = list(statuses), []
            if previous.null_key_rows:
                yield previous.null_key_rows
        else:
            unchanged = {
                ref.dataset
                for ref in items
                if previous.fingerprints.get(ref.dataset) == fingerprints[ref.dataset]
                and statuses.get(ref.dataset, Status.FAILED) != Status.FAILED
            }
            reused = sorted(unchanged)
            items = [ref for ref in items if ref.dataset not in unchanged]
        Metrics.counter(NAMESPACE, "datasets_reused").inc(len(reused))
        for start in range(0, len(reused), _REUSED_PER_TABLE):
            yield previous.reused_rows(reused[start : start + _REUSED_PER_TABLE], self._config.run_id)
        return items
