"""Input fingerprints: what, besides the data, decides a dataset's row, and a hash of its files.

A dataset's fingerprint hashes the settings key (:func:`settings_key`: the tapefit
version and the settings that decide the fit's answer) and every input file's path,
size and modification time (on object stores, the object's update time).
``--incremental`` reuses the previous row of a dataset whose fingerprint has not
changed, and ``--warm_start`` starts only from rows fitted under the same settings key
(:mod:`pipeline.table.history`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from pipeline import __version__
from pipeline.config.settings import JobConfig

__all__ = ["WHOLE_INPUT", "fingerprint", "settings_key"]

# column grouping: one fingerprint for the whole input, stored under this id
WHOLE_INPUT = "*"


def settings_key(config: JobConfig, version: str = __version__) -> str:
    """What, besides the data, decides a dataset's row, as canonical JSON.

    The key holds the tapefit version, the x, y and weight columns, the grouping
    (``file``, ``directory`` or ``column:NAME``) and every fit setting
    (:class:`~pipeline.config.settings.FitConfig`: learning rate, max steps, tolerance,
    standardization, dtype, loss, Huber's ε, intercept, weights, loss form). It leaves
    out what only decides how the run goes, not the answer: the input pattern, the
    output, the run date and id, ``--incremental``, ``--warm_start``, the batch size,
    progress and memory limits, and the exit-code threshold.

    Args:
        config: The job's configuration.
        version: The tapefit version the rows are fitted by (this code's by default).

    Returns:
        A JSON object with sorted keys: equal settings give equal strings.
    """
    grouping = f"column:{config.key_column}" if config.key_column else config.group_by
    key = {
        "tapefit": version,
        "x_column": config.x_column,
        "y_column": config.y_column,
        "group_by": grouping,
        "fit": dataclasses.asdict(config.fit),
    }
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def fingerprint(settings: str, files: list[tuple[str, int, float, str]]) -> str:
    """A short hash of the fit settings and of every file's (path, size, modification time, identity).

    The identity (:attr:`pipeline.discover.files.FileInfo.identity`, inode and ctime on a
    local disk) catches a file replaced by a copy that keeps its size and mtime; an empty
    identity (object stores, whose update time the server sets) adds nothing to the hash.

    Args:
        settings: The :func:`settings_key` of the run.
        files: ``(path, size, modified, identity)`` of each of the dataset's files.

    Returns:
        32 hexadecimal digits.
    """
    digest = hashlib.sha256(settings.encode("utf-8"))
    for path, size, modified, identity in sorted(files):
        digest.update(f"\0{path}\0{size}\0{modified!r}".encode())
        if identity:
            digest.update(f"\0{identity}".encode())
    return digest.hexdigest()[:32]
