"""The table's history: each run's input fingerprints, and the rows of earlier runs.

``--incremental`` looks back at the *previous partition*: the latest committed
``run_date=D`` of the output table with D on or before this run's date (a rerun of a
date looks at that date's committed run, whose rows are reused as they are).
``--warm_start`` starts from the latest committed partition strictly before this run's
date, and only when it was fitted under this run's settings key
(:func:`pipeline.discover.fingerprints.settings_key`), so that rerunning a date gives
the same answer. A partition is committed once it has ``_manifest.json``; its rows are
exactly the data files the manifest lists (``"files"``), whatever else the folder
holds (an object store's commit moves the new files in before deleting the old ones).

Every run records, beside its manifest, a fingerprints file (``_fingerprints.arrow``,
or the name the manifest gives under ``"fingerprints"``): one fingerprint per dataset,
a hash of the settings key and of every input file's path, size and modification time
(on object stores, the object's update time), with the settings key itself in the
file's schema metadata (:data:`SETTINGS_METADATA`). A dataset whose fingerprint is
unchanged and whose previous row is not ``failed`` can reuse that row instead of
being refit.

Everything goes through Beam's ``FileSystems``, so tables on ``gs://`` work too.
"""

from __future__ import annotations

import dataclasses
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
from pipeline.discover.fingerprints import WHOLE_INPUT, settings_key
from pipeline.fit.result import Status
from pipeline.observe.counters import NAMESPACE
from pipeline.table.paths import MANIFEST, staging_dir
from pipeline.table.schema import SCHEMA

__all__ = [
    "FINGERPRINTS",
    "SETTINGS_METADATA",
    "ForeignPartitionError",
    "PreviousRun",
    "TableHistory",
    "load_previous",
    "read_partition",
    "warm_starts",
    "write_fingerprints",
]

# Arrow IPC, not Parquet: globs like run_date=*/*.parquet must not pick it up as table data.
FINGERPRINTS = "_fingerprints.arrow"
# The fingerprints file's schema metadata key holding the run's settings key (JSON).
SETTINGS_METADATA = b"tapefit.settings"
# Reused rows leave discovery in Arrow tables of at most this many rows.
_REUSED_PER_TABLE = 50_000
_PREFIX = "run_date="

# A warm start: (w, b).
Start = tuple[float, ...]


def write_fingerprints(folder: str, fingerprints: dict[str, str], settings: str | None = None) -> None:
    """Write ``dataset → fingerprint`` as ``folder/_fingerprints.arrow``.

    Args:
        folder: The (staged) partition folder.
        fingerprints: One fingerprint per dataset (:data:`~pipeline.discover.fingerprints.WHOLE_INPUT`
            alone under column grouping).
        settings: The run's settings key, stored in the schema metadata under
            :data:`SETTINGS_METADATA`; ``None`` writes none (as tapefit 0.1 did).
    """
    metadata = {SETTINGS_METADATA: settings.encode("utf-8")} if settings is not None else None
    schema = pa.schema([("dataset", pa.string()), ("fingerprint", pa.string())], metadata=metadata)
    table = pa.table({"dataset": list(fingerprints), "fingerprint": list(fingerprints.values())}, schema=schema)
    buffer = io.BytesIO()
    with pa.ipc.new_file(buffer, table.schema) as writer:
        writer.write_table(table)
    handle = FileSystems.create(FileSystems.join(folder, FINGERPRINTS))
    try:
        handle.write(buffer.getvalue())
    finally:
        handle.close()


class ForeignPartitionError(ValueError):
    """An earlier partition that cannot be read as this table's rows; one line for the user.

    A file that is not a tapefit table, a manifest that is not JSON, or a file the
    manifest lists that is missing.
    """


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
    """A committed partition: its date, rows, input fingerprints and settings key.

    Attributes:
        run_date: The partition's date.
        rows: Its output rows (:data:`pipeline.table.SCHEMA`), from the files its manifest lists.
        fingerprints: ``dataset → fingerprint`` (empty for runs that recorded none).
        null_key_rows: Rows its run skipped for a null key (column grouping), from its manifest.
        settings: The settings key its rows were fitted under, ``None`` for partitions
            written before tapefit 0.2 recorded it.
        warm_from: From :func:`load_previous` with ``--warm_start``: the partition the
            starts come from (strictly earlier, same settings key), or ``None`` (cold).
    """

    run_date: str
    rows: pa.Table
    fingerprints: dict[str, str]
    null_key_rows: int = 0
    settings: str | None = None
    warm_from: PreviousRun | None = None

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

    def starts(self) -> dict[str, Start]:
        """``dataset → (w, b, scale)`` for ``--warm_start``: the rows of :attr:`warm_from` that have numbers.

        Empty when there is nothing to start from. The scale is Huber's fitted σ (the
        settings key matches, so the previous rows are Huber fits too); the squared
        loss uses only (w, b).
        """
        return _starts(self.warm_from.rows) if self.warm_from is not None else {}


def _starts(rows: pa.Table) -> dict[str, Start]:
    names, ws, bs, scales = (rows.column(c).to_pylist() for c in ("dataset", "w", "b", "scale"))
    return {
        name: (w, b) if scale is None else (w, b, scale)
        for name, w, b, scale in zip(names, ws, bs, scales, strict=True)
        if w is not None and b is not None
    }


def _committed_dates(output: str) -> list[str]:
    found = FileSystems.match([FileSystems.join(output, f"{_PREFIX}*", MANIFEST)])[0].metadata_list
    dates = []
    for meta in found:
        folder = meta.path[: -len(MANIFEST) - 1]
        name = folder.rstrip("/").rsplit("/", 1)[-1]
        if name.startswith(_PREFIX):
            dates.append(name[len(_PREFIX) :])
    return sorted(dates)


def _read_bytes(path: str) -> bytes:
    with FileSystems.open(path) as handle:
        return handle.read()


def _read_manifest(folder: str) -> dict:
    path = FileSystems.join(folder, MANIFEST)
    try:
        manifest = json.loads(_read_bytes(path).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        message = f"the previous partition's {path} is not a tapefit manifest ({error}); rerun that date"
        raise ForeignPartitionError(" ".join(message.split())) from None
    if not isinstance(manifest, dict):
        raise ForeignPartitionError(f"the previous partition's {path} is not a tapefit manifest (not a JSON object)")
    return manifest


def _listed(folder: str, names: list[str], present: set[str]) -> list[str]:
    """The paths of the files ``names`` in ``folder``.

    Raises:
        ForeignPartitionError: naming the first listed file that is missing.
    """
    for name in names:
        if name not in present:
            raise ForeignPartitionError(
                f"the previous partition's file {FileSystems.join(folder, name)} is missing, though its "
                f"{MANIFEST} lists it; rerun that date or move the partition out of the table"
            )
    return [FileSystems.join(folder, name) for name in names]


def _read_fingerprints(path: str) -> tuple[dict[str, str], str | None]:
    try:
        table = pa.ipc.open_file(io.BytesIO(_read_bytes(path))).read_all()
    except pa.ArrowException as error:
        message = f"the previous partition's {path} is not a tapefit fingerprints file ({error}); rerun that date"
        raise ForeignPartitionError(" ".join(message.split())) from None
    prints = dict(zip(*(table.column(c).to_pylist() for c in ("dataset", "fingerprint")), strict=True))
    settings = (table.schema.metadata or {}).get(SETTINGS_METADATA)
    return prints, settings.decode("utf-8") if settings is not None else None


def read_partition(output: str, run_date: str) -> PreviousRun:
    """Read the committed partition ``output/run_date=D`` as its manifest describes it.

    The rows are those of the data files the manifest lists under ``"files"`` (every
    ``*.parquet`` file only for a manifest without that list); other files in the
    folder are ignored. The fingerprints come from the file the manifest names under
    ``"fingerprints"``, else from ``_fingerprints.arrow`` if there is one.

    Args:
        output: The table directory.
        run_date: The partition's date (it must have a manifest).

    Returns:
        The partition (without :attr:`PreviousRun.warm_from`).

    Raises:
        ForeignPartitionError: if a file is not a tapefit table (naming the file and
            the column), the manifest is not JSON, or a file it lists is missing.
    """
    folder = FileSystems.join(output, f"{_PREFIX}{run_date}")
    manifest = _read_manifest(folder)
    found = FileSystems.match([FileSystems.join(folder, "*")])[0].metadata_list
    present = {FileSystems.split(meta.path)[1] for meta in found}
    names = manifest.get("files")
    if names is None:  # a manifest that predates the file list, or not written by tapefit
        names = sorted(name for name in present if name.endswith(".parquet"))
    tables = []
    for path in _listed(folder, list(names), present):
        try:
            table = pq.read_table(io.BytesIO(_read_bytes(path)))
        except (pa.ArrowException, OSError) as error:
            message = f"the previous partition's file {path} is not a readable Parquet file ({error})"
            raise ForeignPartitionError(" ".join(message.split())) from None
        tables.append(_as_rows(path, table))
    rows = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    fingerprints: dict[str, str] = {}
    settings = None
    named = manifest.get("fingerprints")
    if named or FINGERPRINTS in present:
        [marks] = _listed(folder, [named or FINGERPRINTS], present)
        fingerprints, settings = _read_fingerprints(marks)
    null_key_rows = (manifest.get("rows") or {}).get("null_key") or 0
    return PreviousRun(run_date, rows, fingerprints, null_key_rows, settings)


def _start_partition(config: JobConfig, dates: list[str], loaded: PreviousRun | None) -> PreviousRun | None:
    """The partition ``--warm_start`` starts from: the latest before the run date, same settings key."""
    earlier = [d for d in dates if d < config.run_date]
    if not earlier:
        return None
    same = loaded is not None and loaded.run_date == earlier[-1]
    found = loaded if same else read_partition(config.output, earlier[-1])
    return found if found.settings == settings_key(config) else None


def warm_starts(config: JobConfig) -> dict[str, Start]:
    """``dataset → (w, b)`` to start ``--warm_start`` from (empty: start cold).

    The starts are the rows of the latest committed partition strictly before
    ``config.run_date``, and only when that partition was fitted under the same
    settings key; an older partition that recorded none gives none.

    Raises:
        ForeignPartitionError: if that partition cannot be read as this table's.
    """
    start = _start_partition(config, _committed_dates(config.output), None)
    return _starts(start.rows) if start is not None else {}


def _latest(config: JobConfig, dates: list[str]) -> PreviousRun | None:
    """The latest committed partition on or before the run date (what ``--incremental`` reuses)."""
    on_or_before = [d for d in dates if d <= config.run_date]
    return read_partition(config.output, on_or_before[-1]) if on_or_before else None


def load_previous(config: JobConfig) -> PreviousRun | None:
    """Read the latest committed partition dated on or before ``config.run_date``.

    With ``--warm_start``, its :attr:`~PreviousRun.warm_from` is the partition the
    starts come from (see :func:`warm_starts`), read too when it is another one.

    Returns:
        The previous run, or ``None`` when the table has no such partition yet.

    Raises:
        ForeignPartitionError: if one of them cannot be read as this table's (a foreign
            file, naming it and the column; a listed file that is missing).
    """
    dates = _committed_dates(config.output)
    previous = _latest(config, dates)
    if previous is not None and config.warm_start:
        previous = dataclasses.replace(previous, warm_from=_start_partition(config, dates, previous))
    return previous


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
        write_fingerprints(staging_dir(self._config), fingerprints, settings_key(self._config))

    def reuse(self, items: list, fingerprints: dict[str, str]) -> Iterator[pa.Table | int]:
        """Yield the reused rows; return the items that still need a fit.

        A dataset is reused when its fingerprint is unchanged and its previous row is
        not ``failed``. With column grouping every key draws on every file, so reuse is
        all or nothing: the whole previous partition is reused only when the input's
        fingerprint is unchanged and none of its rows is ``failed`` (a failed key, or a
        file that could not be read, whose keys' fits lack its rows); a full reuse also
        yields (as an ``int``) the previous run's count of null-key rows, which the
        same files still hold.
        """
        previous = _latest(self._config, _committed_dates(self._config.output))
        if previous is None or not previous.fingerprints:
            return items
        statuses = dict(zip(*(previous.rows.column(c).to_pylist() for c in ("dataset", "status")), strict=True))
        if self._config.group_by == GroupBy.COLUMN:
            changed = previous.fingerprints.get(WHOLE_INPUT) != fingerprints[WHOLE_INPUT]
            if changed or Status.FAILED in statuses.values():
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
