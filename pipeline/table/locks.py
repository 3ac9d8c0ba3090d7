"""The commit lock of one partition of a local table: one swap of ``run_date=D`` at a time.

The local commit swaps the partition folder with two renames, which two runs of the same
date must not interleave. :func:`commit_lock` serializes them with an exclusive ``flock``
on ``_staging/_locks/run_date=D.lock``, held only for the commit itself (a second or
less), so runs of the same date both succeed and the partition ends as the last
committer's complete output. The kernel drops the lock when its holder dies, so a killed
run never leaves a stale lock. A run that cannot take the lock within ``timeout``
seconds refuses with :class:`PartitionBusyError`, naming the holder.

Object stores have no such lock and need none: their commit moves only files named
after the run and switches the partition by rewriting one manifest object
(:mod:`pipeline.table.commit`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator

from apache_beam.io.filesystems import FileSystems

from pipeline.config.settings import JobConfig
from pipeline.table.leases import LOCKS, describe_owner, open_exclusive, owner_record, read_record
from pipeline.table.paths import staging_root

__all__ = ["BUSY", "PartitionBusyError", "commit_lock", "lock_path"]

BUSY = "partition busy:"  # how the launcher recognizes the refusal, whichever runner carried it
_POLL_S = 0.1


class PartitionBusyError(RuntimeError):
    """Another run held the partition's commit lock for longer than this run would wait."""


def lock_path(config: JobConfig, run_date: str | None = None) -> str:
    """``TABLE_DIR/_staging/_locks/run_date=D.lock``."""
    return FileSystems.join(staging_root(config), LOCKS, f"run_date={run_date or config.run_date}.lock")


@contextlib.contextmanager
def commit_lock(config: JobConfig, run_date: str | None = None, timeout: float | None = None) -> Iterator[None]:
    """Hold the commit lock of partition ``run_date`` (default this run's) of a local table.

    Args:
        config: The job's configuration.
        run_date: The partition to lock (default ``config.run_date``).
        timeout: Seconds to wait for the lock (default ``config.lock_timeout``).

    Raises:
        PartitionBusyError: if another run held the lock for all of ``timeout``.
    """
    path = lock_path(config, run_date)
    timeout = config.lock_timeout if timeout is None else timeout
    record = owner_record(config.run_id)
    deadline = time.monotonic() + timeout
    fd = open_exclusive(path, record, wait=False)
    while fd is None:
        if time.monotonic() >= deadline:
            holder = read_record(path)
            raise PartitionBusyError(
                f"{BUSY} run_date={run_date or config.run_date} of {config.output} is being committed by "
                f"{describe_owner(holder)}; waited {timeout:g} s (--lock_timeout)"
            )
        time.sleep(_POLL_S)
        fd = open_exclusive(path, record, wait=False)
    try:
        yield
    finally:
        # Unlink while still holding the lock: a waiter that opened the old file sees it
        # was unlinked once it gets the lock, and retries on a new one (open_exclusive).
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
