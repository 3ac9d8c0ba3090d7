"""Who owns what under ``TABLE_DIR/_staging/``: each run's lease, and which runs are provably dead.

Every run works in its own folder, ``_staging/RUN_ID/``, and owns it through a lease,
``_staging/RUN_ID/_lease.json`` (run id, host, pid, start time), written by the launcher
before anything else. Clean-up removes a run's folder only when that run is *provably
dead*, never because it is old or of the same date:

- **Local tables**: the launcher holds an exclusive ``flock`` on its lease file for the
  whole run, and the kernel drops it when the process dies, however it dies. A run is
  dead when another process can take that lock. (On NFS this relies on the server's
  lock manager, as every flock there does.)
- **Object stores** (``gs://``, ``s3://``), which have no locks: the launcher rewrites
  its lease every :data:`HEARTBEAT_S` seconds, and a run is dead when its lease has not
  been rewritten for :data:`LEASE_TIMEOUT_S` (by the store's own update time, so only a
  launcher stalled that long, or a clock off by that much, can be mistaken for dead).

A folder without a lease (a run of a tapefit version that wrote none, or a folder whose
lease could not be written) counts as dead once nothing in it has changed for
:data:`LEASE_TIMEOUT_S`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import socket
import threading
import time

from apache_beam.io.filesystems import FileSystems

from pipeline.config.settings import JobConfig
from pipeline.table.folders import delete_tree, is_local, remove_if_empty
from pipeline.table.paths import staging_root

__all__ = [
    "HEARTBEAT_S",
    "LEASE",
    "LEASE_TIMEOUT_S",
    "LOCKS",
    "RunLease",
    "describe_owner",
    "is_run_dead",
    "open_exclusive",
    "owner_record",
    "read_record",
    "run_folders",
]

LEASE = "_lease.json"
LOCKS = "_locks"  # _staging/_locks/: the commit locks of local tables (pipeline.table.locks)
HEARTBEAT_S = 30.0
LEASE_TIMEOUT_S = 600.0


def owner_record(run_id: str) -> dict:
    """Who this process is: the run, host, pid and time, as leases and locks record them."""
    return {
        "run_id": run_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def describe_owner(record: dict) -> str:
    """``run R (host H, pid P, since T)`` for messages."""
    return (
        f"run {record.get('run_id', '?')} (host {record.get('host', '?')}, pid {record.get('pid', '?')}, "
        f"since {record.get('since', '?')})"
    )


def open_exclusive(path: str, payload: dict, wait: bool) -> int | None:
    """Open (creating) ``path`` and take an exclusive ``flock`` on it; write ``payload`` into it.

    The lock is on the open file, so it holds only while the file is still the one at
    ``path``: if another process unlinked it meanwhile, the lock is dropped and the
    attempt repeated on the new file.

    Args:
        path: A local file path.
        payload: What to record in the file once the lock is held.
        wait: Block until the lock is free (else return ``None`` at once when it is held).

    Returns:
        The open descriptor holding the lock, or ``None`` when ``wait`` is false and
        another process holds it.
    """
    while True:
        for _ in range(100):  # a concurrent clean-up may remove the (empty) parent folders
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
                break
            except FileNotFoundError:
                continue
        else:
            raise OSError(errno.ENOENT, f"cannot create {path}: its folder keeps disappearing")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # unlinked by its previous holder between our open and our lock
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(payload).encode("utf-8"), 0)
        return fd


def read_record(path: str) -> dict:
    """The JSON a lease or lock file holds (empty when unreadable or half written)."""
    try:
        with FileSystems.open(path) as handle:
            return json.loads(handle.read().decode("utf-8") or "{}")
    except Exception:  # noqa: BLE001 (a lease being rewritten or removed: nothing to say)
        return {}


def run_folders(config: JobConfig) -> list[str]:
    """The run ids that have a folder under ``_staging/`` (the locks folder excluded)."""
    root = staging_root(config)
    if is_local(root):  # a folder listing (empty run folders list no file)
        if not os.path.isdir(root):
            return []
        return sorted(name for name in os.listdir(root) if name != LOCKS and os.path.isdir(os.path.join(root, name)))
    runs = set()
    for meta in FileSystems.match([root + "/**"])[0].metadata_list:  # object stores: folders are key prefixes
        run = meta.path[len(root) + 1 :].split("/", 1)[0]
        if run and run != LOCKS:
            runs.add(run)
    return sorted(runs)


def _newest_change(folder: str) -> float:
    found = FileSystems.match([folder + "/**"])[0].metadata_list
    times = [meta.last_updated_in_seconds for meta in found]
    if is_local(folder) and os.path.isdir(folder):
        times.append(os.stat(folder).st_mtime)
    return max(times, default=0.0)


def is_run_dead(config: JobConfig, run_id: str, now: float | None = None) -> bool:
    """Whether the run owning ``_staging/RUN_ID/`` has provably ended (see the module doc).

    Args:
        config: Any run's configuration on the same table.
        run_id: The run whose folder is in question.
        now: The current time (seconds since the epoch), for tests; default the clock.
    """
    if run_id == config.run_id:
        return False
    folder = FileSystems.join(staging_root(config), run_id)
    lease = FileSystems.join(folder, LEASE)
    now = time.time() if now is None else now
    if is_local(folder):
        if not os.path.isfile(lease):
            return now - _newest_change(folder) > LEASE_TIMEOUT_S
        fd = open_exclusive_probe(lease)
        if fd is None:
            return False
        os.close(fd)
        return True
    if not FileSystems.exists(lease):
        return now - _newest_change(folder) > LEASE_TIMEOUT_S
    try:
        updated = FileSystems.last_updated(lease)
    except Exception:  # noqa: BLE001 (removed meanwhile: its run has finished)
        return True
    return now - updated > LEASE_TIMEOUT_S


def open_exclusive_probe(path: str) -> int | None:
    """Try the lock on an existing local lease without creating or rewriting it.

    Returns:
        The descriptor holding the lock (the lease's owner is gone), or ``None`` when the
        owner still holds it (or the file has just been removed, its run having finished).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class RunLease:
    """This run's claim on ``_staging/RUN_ID/``: held from launch until the launcher ends.

    Creating the lease is also the launcher's check that the output can be written.

    Args:
        config: The job's configuration (a Parquet table output).
    """

    def __init__(self, config: JobConfig) -> None:
        self._config = config
        self._path = FileSystems.join(staging_root(config), config.run_id, LEASE)
        self._fd: int | None = None  # local: the descriptor holding the flock
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None  # object stores: the heartbeat thread

    def acquire(self) -> RunLease:
        """Write the lease (and on object stores start its heartbeat).

        Raises:
            OSError: (or Beam's ``BeamIOError``) if the output cannot be written.
        """
        record = owner_record(self._config.run_id)
        if is_local(self._path):
            self._fd = open_exclusive(self._path, record, wait=False)
            if self._fd is None:  # run ids are unique: only a clash of ids gets here
                raise OSError(f"the lease {self._path} is held by another process")
            return self
        self._write(record)
        self._beat = threading.Thread(target=self._heartbeat, args=(record,), name="tapefit-lease", daemon=True)
        self._beat.start()
        return self

    def _write(self, record: dict) -> None:
        handle = FileSystems.create(self._path, mime_type="application/json")
        try:
            handle.write(json.dumps({**record, "heartbeat_at": time.time()}).encode("utf-8"))
        finally:
            handle.close()

    def _heartbeat(self, record: dict) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):  # a missed beat is retried; ten in a row mean "dead"
                self._write(record)

    def release(self) -> None:
        """End the lease and delete this run's whole staging folder (whatever the run left)."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        folder = FileSystems.join(staging_root(self._config), self._config.run_id)
        try:
            delete_tree(folder)
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        remove_if_empty(FileSystems.join(staging_root(self._config), LOCKS))
        remove_if_empty(staging_root(self._config))

    def __enter__(self) -> RunLease:
        """Acquire the lease."""
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        """Release the lease and remove this run's staging folder."""
        self.release()
