"""Folders on any filesystem Beam knows: local paths, or prefixes of an object store."""

from __future__ import annotations

import contextlib
import os

from apache_beam.io.filesystems import FileSystems

__all__ = ["delete_tree", "is_local", "remove_if_empty"]


def is_local(path: str) -> bool:
    """Whether ``path`` is on a local filesystem (Beam's ``file`` scheme or a plain path)."""
    return FileSystems.get_scheme(path) in (None, "file")


def delete_tree(folder: str) -> None:
    """Delete a folder and everything below it, on any filesystem (nothing there is fine)."""
    if is_local(folder):
        if os.path.lexists(folder):
            FileSystems.delete([folder])
        return
    found = [meta.path for meta in FileSystems.match([folder + "/**"])[0].metadata_list]
    if found:
        FileSystems.delete(found)


def remove_if_empty(folder: str) -> None:
    """Remove a local folder if it is empty, atomically (``rmdir``).

    A folder another run has just written into stays. Object stores have no empty
    folders to remove.
    """
    if is_local(folder):
        with contextlib.suppress(OSError):
            os.rmdir(folder)
