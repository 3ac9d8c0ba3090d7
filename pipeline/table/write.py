"""Writing the output partition and making it visible all at once, with ``_manifest.json``.

Rows are first written to ``TABLE_DIR/_staging/RUN_ID/run_date=D/`` (readers ignore
``_``-prefixed folders). Only when every file is written does :func:`commit_partition`
add the manifest and swap the staged folder into ``TABLE_DIR/run_date=D``, replacing
an earlier run of that date as a whole. On a local filesystem the swap is two
directory renames; on object stores (no directory rename) files are moved one by one
and the previous run's files deleted afterwards. A run that dies before the commit
leaves the previous partition untouched.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from importlib import metadata

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from pipeline import __version__
from pipeline.config.settings import JobConfig
from pipeline.discover.listing import Expected, merge_expected
from pipeline.fit.result import Status
from pipeline.read.parquet import read_table
from pipeline.table.history import FINGERPRINTS
from pipeline.table.ids import check_ids
from pipeline.table.paths import MANIFEST, partition_dir, staging_dir, staging_root
from pipeline.table.schema import SCHEMA

__all__ = [
    "SummarizeRows",
    "WriteTable",
    "add_to_manifest",
    "check_output_writable",
    "commit_partition",
    "read_manifest",
]


class SummarizeRows(beam.CombineFn):
    """Counts datasets per status and rows used/dropped; mergeable across workers.

    Inputs are Arrow tables of output rows (or single row dicts).
    """

    def create_accumulator(self) -> dict:
        """Return an empty tally."""
        return {"datasets": 0, "reused": 0, "rows_used": 0, "rows_dropped": 0, **{status: 0 for status in Status.ALL}}

    def add_input(self, tally: dict, rows: pa.Table | dict) -> dict:
        """Count a table of output rows (or one row)."""
        if isinstance(rows, dict):
            rows = pa.Table.from_pylist([rows], schema=SCHEMA)
        statuses = rows.column("status").to_pylist()
        n_rows = rows.column("n_rows").to_pylist()
        tally["datasets"] += len(statuses)
        for status, used in zip(statuses, n_rows, strict=True):
            tally[status] += 1
            if status != Status.FAILED:  # a failed dataset's rows were not used by any fit
                tally["rows_used"] += used
        tally["rows_dropped"] += sum(rows.column("n_dropped").to_pylist())
        tally["reused"] += rows.num_rows - rows.column("reused_from").null_count
        return tally

    def merge_accumulators(self, tallies: list[dict]) -> dict:
        """Add tallies key by key."""
        tallies = iter(tallies)
        merged = next(tallies)
        for tally in tallies:
            for key, value in tally.items():
                merged[key] += value
        return merged

    def extract_output(self, tally: dict) -> dict:
        """Return the tally as is."""
        return tally


def _versions() -> dict:
    found = {}
    for name, dists in {
        "tapefit": ("tapefit",),
        "apache-beam": ("apache-beam",),
        "tensorflow": ("tensorflow", "tensorflow-cpu"),
        "pyarrow": ("pyarrow",),
        "numpy": ("numpy",),
    }.items():
        for dist in dists:
            try:
                found[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    found.setdefault("tapefit", __version__)
    return found


def _is_local(path: str) -> bool:
    return FileSystems.get_scheme(path) in (None, "file")


def _write_json(path: str, payload: dict) -> None:
    handle = FileSystems.create(path, mime_type="application/json")
    try:
        handle.write(json.dumps(payload, indent=2, sort_keys=True).encode("utf-8"))
    finally:
        handle.close()


def read_manifest(config: JobConfig) -> dict:
    """Return the committed partition's manifest.

    Raises:
        OSError: if it cannot be read.
    """
    with FileSystems.open(FileSystems.join(partition_dir(config), MANIFEST)) as handle:
        return json.loads(handle.read().decode("utf-8"))


def add_to_manifest(config: JobConfig, extra: dict) -> dict:
    """Add keys (e.g. the run's metrics, known only after it ends) to this run's manifest.

    The manifest is rewritten only if it still belongs to this run; on a local
    filesystem it is replaced by a rename, so readers never see half a file.

    Returns:
        The manifest as it now stands.

    Raises:
        OSError: if it cannot be read or written.
    """
    manifest = read_manifest(config)
    if manifest.get("run_id") != config.run_id:  # a later run of the date has replaced ours
        return manifest
    manifest.update(extra)
    path = FileSystems.join(partition_dir(config), MANIFEST)
    if _is_local(path):
        _write_json(path + ".tmp", manifest)
        FileSystems.rename([path + ".tmp"], [path])
    else:
        _write_json(path, manifest)
    return manifest


def check_output_writable(config: JobConfig) -> None:
    """Create and delete a probe file under the table's staging folder.

    Raises:
        OSError: (or Beam's ``BeamIOError``) if the output cannot be written.
    """
    probe_dir = FileSystems.join(staging_root(config), config.run_id)
    probe = FileSystems.join(probe_dir, "_probe")
    handle = FileSystems.create(probe)
    handle.write(b"ok")
    handle.close()
    FileSystems.delete([probe])
    _remove_if_empty(probe_dir)
    _remove_if_empty(staging_root(config))


def _remove_if_empty(folder: str) -> None:
    """Remove an empty local folder (object stores have no empty folders to remove)."""
    if _is_local(folder) and FileSystems.exists(folder) and not FileSystems.match([folder + "/**"])[0].metadata_list:
        FileSystems.delete([folder])


def _delete_tree(folder: str) -> None:
    """Delete a folder and everything below it, on any filesystem."""
    if _is_local(folder):
        if FileSystems.exists(folder):
            FileSystems.delete([folder])
        return
    found = [meta.path for meta in FileSystems.match([folder + "/**"])[0].metadata_list]
    if found:
        FileSystems.delete(found)


def _swap_local(staged: str, final: str, parked: str) -> None:
    """Replace ``final`` by ``staged`` with two renames, restoring ``final`` on failure."""
    had_previous = FileSystems.exists(final)
    if had_previous:
        FileSystems.rename([final], [parked])
    try:
        FileSystems.rename([staged], [final])
    except Exception:
        if had_previous:
            FileSystems.rename([parked], [final])
        raise


def _swap_by_files(staged: str, final: str, names: list[str]) -> None:
    """Object stores: move the new files in, then delete the previous run's files."""
    old = [meta.path for meta in FileSystems.match([final + "/*"])[0].metadata_list]
    FileSystems.rename([FileSystems.join(staged, n) for n in names], [FileSystems.join(final, n) for n in names])
    stale = [path for path in old if FileSystems.split(path)[1] not in names]
    if stale:
        FileSystems.delete(stale)


def _check_ids(expected: Expected, files: list[str]) -> None:
    """Refuse a partition whose rows are not exactly one per dataset found.

    The dataset ids are read back from the staged files. With file and directory
    grouping they must be exactly the ids discovery found, each once; with column
    grouping (ids known only after reading) each id must appear once.

    Raises:
        RuntimeError: naming the ids missing, duplicated or not found by discovery.
    """
    written = pa.concat_arrays(
        [chunk for path in files for chunk in read_table(path, ["dataset"]).column("dataset").chunks]
        or [pa.array([], pa.string())]
    )
    check_ids(expected.datasets, written)


def commit_partition(
    config: JobConfig,
    files: list[str],
    summary: dict,
    null_key_rows: int,
    finished_at: dt.datetime,
    expected: Expected | None = None,
) -> dict:
    """Write the manifest and make the staged partition the visible one.

    Args:
        config: The job's configuration.
        files: The data files written to the staging folder.
        summary: The :class:`SummarizeRows` tally of all output rows.
        null_key_rows: Rows skipped because their grouping key was null.
        finished_at: When the write finished (UTC).
        expected: What discovery found (``None``: not checked): every dataset id found
            must be written exactly once, and no other (with column grouping, whose
            ids are known only after reading, each id once); its skipped files are
            recorded in the manifest.

    Returns:
        The manifest that was written.

    Raises:
        RuntimeError: if there is nothing to commit, or the rows do not match the
            datasets found (the previous partition is kept either way).
    """
    final = partition_dir(config)
    staged = staging_dir(config)
    if not files or not summary["datasets"]:
        raise RuntimeError("no datasets were fitted; the previous partition is kept")
    if not FileSystems.exists(files[0]):  # a retried commit after a successful one
        committed = read_manifest(config) if FileSystems.exists(FileSystems.join(final, MANIFEST)) else {}
        if committed.get("run_id") == config.run_id:
            return committed
        raise RuntimeError(f"the staged files of run {config.run_id} are gone; nothing was committed")
    if expected is not None:
        _check_ids(expected, files)
    names = sorted(FileSystems.split(path)[1] for path in files)
    manifest = {
        "run_id": config.run_id,
        "run_date": config.run_date,
        "input": config.input,
        "partition": final,
        "options": config.describe(),
        "versions": _versions(),
        "counts": {key: summary.get(key, 0) for key in ("datasets", *Status.ALL, "reused")},
        "rows": {
            "used": summary["rows_used"],
            "dropped": summary["rows_dropped"],
            "null_key": null_key_rows,
        },
        "skipped": [{"path": path, "reason": reason} for path, reason in (expected.skipped if expected else ())],
        "files": names,
        "started_at": config.started_at.isoformat(),
        "finished_at": finished_at.isoformat(),
    }
    _write_json(FileSystems.join(staged, MANIFEST), manifest)
    run_folder = FileSystems.join(staging_root(config), config.run_id)
    if _is_local(final):
        _swap_local(staged, final, FileSystems.join(run_folder, "previous"))
    else:
        marks = [FINGERPRINTS] if FileSystems.exists(FileSystems.join(staged, FINGERPRINTS)) else []
        _swap_by_files(staged, final, [*names, MANIFEST, *marks])
    _delete_tree(run_folder)
    _remove_stale_staging(config)
    return manifest


def _remove_stale_staging(config: JobConfig) -> None:
    """Delete staging folders that crashed runs of the same date left behind."""
    root = staging_root(config)
    marker = f"/run_date={config.run_date}/"
    runs = set()
    for meta in FileSystems.match([root + "/**"])[0].metadata_list:
        relative = meta.path[len(root) + 1 :]
        if marker in "/" + relative:
            runs.add(relative.split("/", 1)[0])
    for run in sorted(runs):
        _delete_tree(FileSystems.join(root, run))
    _remove_if_empty(root)


class _CommitFn(beam.DoFn):
    """Runs :func:`commit_partition` once, on the list of all written files."""

    def __init__(self, config: JobConfig) -> None:
        self._config = config

    def process(self, files: list[str], summary: dict, null_key_rows: int, expected: Expected) -> Iterator[dict]:
        now = dt.datetime.now(dt.timezone.utc)
        yield commit_partition(self._config, files, summary, null_key_rows, now, expected)


class WriteTable(beam.PTransform):
    """Writes the rows as this run's partition and commits it; outputs the manifest.

    Input: a dict with ``tables`` (Arrow tables of output rows), ``null_keys``
    (null-key row counts) and ``expected`` (:class:`~pipeline.discover.listing.Expected`:
    the ids found, the files skipped), as :class:`pipeline.graph.fit_datasets.FitDatasets`
    returns it. The commit refuses a partition whose dataset ids are not exactly the
    ids found, each once.

    Args:
        config: The job's configuration.
    """

    def __init__(self, config: JobConfig) -> None:
        super().__init__()
        self._config = config

    def expand(self, results: dict[str, beam.PCollection]) -> beam.PCollection:
        """Write Parquet to the staging folder, then commit it with the manifest."""
        tables = results["tables"]
        files = tables | "WriteParquet" >> beam.io.WriteToParquetBatched(
            FileSystems.join(staging_dir(self._config), f"part-{self._config.run_id}"),
            SCHEMA,
            codec="snappy",
            file_name_suffix=".parquet",
        )
        summary = tables | "Summarize" >> beam.CombineGlobally(SummarizeRows())
        null_keys = results["null_keys"] | "SumNullKeys" >> beam.CombineGlobally(sum)
        expected = results["expected"] | "SumExpected" >> beam.CombineGlobally(merge_expected)
        return (
            files
            | "AllFiles" >> beam.combiners.ToList()
            | "Commit"
            >> beam.ParDo(
                _CommitFn(self._config),
                beam.pvalue.AsSingleton(summary),
                beam.pvalue.AsSingleton(null_keys),
                beam.pvalue.AsSingleton(expected),
            )
        )
