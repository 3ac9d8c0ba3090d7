"""The commit: check the staged rows, write the manifest, make the partition visible at once.

Rows are first written to ``TABLE_DIR/_staging/RUN_ID/run_date=D/`` (readers ignore
``_``-prefixed folders). Only when every file is written does :func:`commit_partition`
check the ids, add ``_manifest.json`` (which lists the partition's files) and publish:

- **Local tables**: under the date's commit lock (:mod:`pipeline.table.locks`), two
  directory renames: the current ``run_date=D`` is moved aside to
  ``_staging/RUN_ID/previous/run_date=D``, the staged folder takes its place, and the
  old one is deleted. A failure of the second rename puts the old folder back; a run
  killed between the two is undone by the next run (:mod:`pipeline.table.cleanup`).
- **Object stores**, which have no directory rename and no locks: the staged files,
  all named after the run, are moved in beside the current ones; then one object, the
  manifest, is rewritten — that is the commit point, atomic on GCS and S3 — and only
  then are files that the manifest does not list, of runs that are no longer alive,
  deleted. Readers that follow the manifest (all of tapefit's) see the old partition
  or the new one, never a mix, at every crash point; the next commit of the date
  deletes what a crash left.

Runs of the same date both succeed: the partition ends as the last committer's
complete output. A run that dies before its commit leaves the partition untouched.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from importlib import metadata

import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from pipeline import __version__
from pipeline.config.faults import checkpoint
from pipeline.config.settings import JobConfig
from pipeline.discover.listing import Expected
from pipeline.fit.result import Status
from pipeline.read.parquet import read_table
from pipeline.table.cleanup import parked_dir, remove_dead_runs
from pipeline.table.folders import delete_tree, is_local, remove_if_empty
from pipeline.table.history import FINGERPRINTS
from pipeline.table.ids import check_ids
from pipeline.table.leases import LEASE, LOCKS, is_run_dead
from pipeline.table.locks import commit_lock
from pipeline.table.paths import MANIFEST, partition_dir, staging_dir, staging_root

__all__ = ["add_to_manifest", "commit_partition", "read_manifest"]

_RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")


def _versions() -> dict:
    found = {"tapefit": __version__}  # the code that ran, whatever an old editable install's metadata says
    for name, dists in {
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
    return found


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
    filesystem under the date's commit lock and by a rename, so neither a concurrent
    commit nor a reader ever sees half a file.

    Returns:
        The manifest as it now stands.

    Raises:
        OSError: if it cannot be read or written.
    """
    path = FileSystems.join(partition_dir(config), MANIFEST)
    if not is_local(path):
        manifest = read_manifest(config)
        if manifest.get("run_id") == config.run_id:
            manifest.update(extra)
            _write_json(path, manifest)
        return manifest
    with commit_lock(config):
        manifest = read_manifest(config)
        if manifest.get("run_id") != config.run_id:  # a later run of the date has replaced ours
            return manifest
        manifest.update(extra)
        _write_json(path + ".tmp", manifest)
        os.replace(path + ".tmp", path)
    return manifest


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


def _swap_local(config: JobConfig, staged: str, final: str) -> None:
    """Replace ``final`` by ``staged`` with two renames, restoring ``final`` if the second fails."""
    parked = parked_dir(config)
    had_previous = os.path.exists(final)
    if had_previous:
        os.makedirs(os.path.dirname(parked), exist_ok=True)
        os.rename(final, parked)
    checkpoint("between_renames")
    try:
        os.rename(staged, final)
    except BaseException:
        if had_previous:
            os.rename(parked, final)
        raise
    if had_previous:
        delete_tree(parked)


def _owner(name: str) -> str | None:
    found = _RUN_ID.search(name)
    return found.group(0) if found else None


def _publish_by_files(config: JobConfig, staged: str, final: str, manifest: dict, moved: dict[str, str]) -> None:
    """Object stores: move this run's files in, rewrite the manifest, then drop what it does not list."""
    FileSystems.rename(
        [FileSystems.join(staged, a) for a in moved], [FileSystems.join(final, b) for b in moved.values()]
    )
    checkpoint("between_renames")
    _write_json(FileSystems.join(final, MANIFEST), manifest)  # the commit point
    drop_unlisted(config, final, manifest)


def drop_unlisted(config: JobConfig, final: str, manifest: dict) -> list[str]:
    """Delete the files of partition ``final`` that its manifest does not list, unless a live run owns them.

    A file's owner is the run id in its name; a live run may be between moving its
    files in and writing its manifest, so its files stay until a later commit.

    Returns:
        The paths deleted.
    """
    listed = {
        MANIFEST,
        *manifest.get("files", ()),
        *([manifest["fingerprints"]] if manifest.get("fingerprints") else []),
    }
    alive: dict[str, bool] = {}  # owner → still running (one lease check per run, not per file)
    stale = []
    for meta in FileSystems.match([FileSystems.join(final, "*")])[0].metadata_list:
        name = FileSystems.split(meta.path)[1]
        owner = _owner(name)
        if owner is not None and owner != config.run_id and owner not in alive:
            alive[owner] = not is_run_dead(config, owner)
        if name in listed or alive.get(owner, False):
            continue
        stale.append(meta.path)
    if stale:
        FileSystems.delete(stale)
    return stale


def _clear_run_folder(config: JobConfig) -> None:
    """Delete what this run staged, keeping its lease (the launcher ends it)."""
    folder = FileSystems.join(staging_root(config), config.run_id)
    if is_local(folder):
        if os.path.isdir(folder):
            for name in os.listdir(folder):
                if name != LEASE:
                    delete_tree(os.path.join(folder, name))
        return
    found = [m.path for m in FileSystems.match([folder + "/**"])[0].metadata_list if not m.path.endswith("/" + LEASE)]
    if found:
        FileSystems.delete(found)


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
        summary: The :class:`~pipeline.table.write.SummarizeRows` tally of all output rows.
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
        PartitionBusyError: if another run held the date's commit lock for all of
            ``config.lock_timeout``.
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
    local = is_local(final)
    has_marks = FileSystems.exists(FileSystems.join(staged, FINGERPRINTS))
    marks = FINGERPRINTS if local else f"_fingerprints-{config.run_id}.arrow"  # object stores: one name per run
    manifest = {
        "run_id": config.run_id,
        "run_date": config.run_date,
        "input": config.input,
        "partition": final,
        "options": config.describe(),
        "versions": _versions(),
        "counts": {key: summary.get(key, 0) for key in ("datasets", *Status.ALL, "reused")},
        "rows": {"used": summary["rows_used"], "dropped": summary["rows_dropped"], "null_key": null_key_rows},
        "skipped": [{"path": path, "reason": reason} for path, reason in (expected.skipped if expected else ())],
        "files": names,
        "fingerprints": marks if has_marks else None,
        "started_at": config.started_at.isoformat(),
        "finished_at": finished_at.isoformat(),
    }
    if local:
        with commit_lock(config):
            checkpoint("commit")
            _write_json(FileSystems.join(staged, MANIFEST), manifest)
            _swap_local(config, staged, final)
    else:
        checkpoint("commit")
        moved = {name: name for name in names}
        if has_marks:
            moved[FINGERPRINTS] = marks
        _publish_by_files(config, staged, final, manifest, moved)
    _clear_run_folder(config)
    remove_dead_runs(config)
    for folder in (
        FileSystems.join(staging_root(config), config.run_id),
        FileSystems.join(staging_root(config), LOCKS),
    ):
        remove_if_empty(folder)
    remove_if_empty(staging_root(config))
    return manifest
