"""Input fingerprints: what, besides the data, decides a dataset's row, and a hash of its files.

A dataset's fingerprint hashes the fit settings and every input file's path, size and
modification time (on object stores, the object's update time). ``--incremental``
reuses the previous row of a dataset whose fingerprint has not changed
(:mod:`pipeline.table.history`).
"""

from __future__ import annotations

import hashlib
import json

from pipeline.config.settings import JobConfig

__all__ = ["WHOLE_INPUT", "fingerprint", "settings_key"]

# column grouping: one fingerprint for the whole input, stored under this id
WHOLE_INPUT = "*"


def settings_key(config: JobConfig) -> str:
    """What, besides the data, decides a dataset's row: columns, grouping and fit settings."""
    fit = config.fit
    parts = [config.x_column, config.y_column, config.group_by, config.key_column or "", repr(fit)]
    return json.dumps(parts)


def fingerprint(settings: str, files: list[tuple[str, int, float, str]]) -> str:
    """A short hash of the fit settings and of every file's (path, size, modification time, identity).

    The identity (:attr:`pipeline.discover.files.FileInfo.identity`, inode and ctime on a
    local disk) catches a file replaced by a copy that keeps its size and mtime; an empty
    identity (object stores, whose update time the server sets) adds nothing to the hash.
    """
    digest = hashlib.sha256(settings.encode("utf-8"))
    for path, size, modified, identity in sorted(files):
        digest.update(f"\0{path}\0{size}\0{modified!r}".encode())
        if identity:
            digest.update(f"\0{identity}".encode())
    return digest.hexdigest()[:32]
