"""Clean-up after runs that died: only their own files, and a half-swapped partition put back.

A run that dies leaves its ``_staging/RUN_ID/`` folder. :func:`remove_dead_runs`
deletes the folders of runs that are provably dead (:mod:`pipeline.table.leases`) and
no other. If a run died between the two renames of a local commit, the partition it
had moved aside (``_staging/RUN_ID/previous/run_date=D``) is renamed back into place
first, under that date's commit lock, so the previous partition survives even that.
"""

from __future__ import annotations

import contextlib
import os

from apache_beam.io.filesystems import FileSystems

from pipeline.config.settings import JobConfig
from pipeline.table.folders import delete_tree, is_local
from pipeline.table.leases import LOCKS, is_run_dead, open_exclusive_probe, run_folders
from pipeline.table.locks import commit_lock
from pipeline.table.paths import staging_root

__all__ = ["PARKED", "parked_dir", "remove_dead_runs", "restore_parked"]

PARKED = "previous"  # _staging/RUN_ID/previous/run_date=D: a partition moved aside by a local commit


def parked_dir(config: JobConfig, run_id: str | None = None, run_date: str | None = None) -> str:
    """Where a local commit moves the partition it replaces, until the new one is in place."""
    return FileSystems.join(
        staging_root(config), run_id or config.run_id, PARKED, f"run_date={run_date or config.run_date}"
    )


def restore_parked(config: JobConfig, run_id: str) -> list[str]:
    """Put back every partition that run ``run_id`` moved aside and never replaced.

    Each date is handled under its commit lock. A parked partition whose date has a
    partition again (the swap completed, or a later run committed) is simply dropped.

    Returns:
        The dates whose partition was put back.
    """
    if not is_local(config.output):
        return []
    parked_root = FileSystems.join(staging_root(config), run_id, PARKED)
    if not os.path.isdir(parked_root):
        return []
    restored = []
    for name in sorted(os.listdir(parked_root)):
        if not name.startswith("run_date="):
            continue
        date = name[len("run_date=") :]
        parked = os.path.join(parked_root, name)
        final = FileSystems.join(config.output, name)
        with commit_lock(config, date):
            if not os.path.exists(final):
                os.rename(parked, final)
                restored.append(date)
            else:
                delete_tree(parked)
    return restored


def _remove_free_locks(config: JobConfig) -> None:
    """Delete the lock files of a local table that nobody holds (a killed commit leaves its file)."""
    folder = FileSystems.join(staging_root(config), LOCKS)
    if not (is_local(folder) and os.path.isdir(folder)):
        return
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        fd = open_exclusive_probe(path)
        if fd is not None:  # free: unlink while holding it, as commit_lock does
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            os.close(fd)


def remove_dead_runs(config: JobConfig) -> list[str]:
    """Delete the staging folders of provably dead runs, after restoring what they parked.

    Returns:
        The run ids whose folders were removed.
    """
    _remove_free_locks(config)
    removed = []
    for run in run_folders(config):
        if run == config.run_id or not is_run_dead(config, run):
            continue
        restore_parked(config, run)
        delete_tree(FileSystems.join(staging_root(config), run))
        removed.append(run)
    return removed
