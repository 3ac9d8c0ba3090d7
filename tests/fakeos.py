"""A fake object store for the tests: ``fakeos://bucket/key`` backed by a local folder.

It behaves like GCS or S3 as Beam's ``FileSystems`` sees them, which is what tapefit must
handle on a cloud runner:

- there are no directories: ``exists`` is true only for objects, ``mkdirs`` does nothing,
  listing is by key prefix and returns objects only;
- ``rename`` is copy-then-delete, object by object (there is no directory rename);
- ``checksum`` is the object's content hash (as GCS's CRC32C or MD5), which a copy that
  keeps the modification time cannot fake.

The store lives under ``$TAPEFIT_FAKEOS_ROOT`` so that subprocesses and Beam's worker
processes see the same objects. Importing this module registers the scheme with Beam
(``FileSystems`` finds every ``FileSystem`` subclass); subprocesses import it with
``--beam_plugins tests.fakeos`` or by importing it before running the job.

Fault injection: ``TAPEFIT_FAKEOS_FAIL="rename:3"`` makes the third ``rename`` call
(counted per process) raise ``OSError``; ``create``, ``delete`` and ``copy`` can be named
the same way (comma-separated, e.g. ``"create:2,delete:1"``). ``operation@text:N``
counts only the calls whose path contains ``text`` (``"create@_manifest.json:1"``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import Counter

from apache_beam.io.filesystem import BeamIOError, CompressedFile, CompressionTypes, FileMetadata, FileSystem

__all__ = ["ROOT_ENV", "SCHEME", "FakeObjectStore", "local_path"]

SCHEME = "fakeos"
ROOT_ENV = "TAPEFIT_FAKEOS_ROOT"
FAIL_ENV = "TAPEFIT_FAKEOS_FAIL"
_PREFIX = f"{SCHEME}://"
_calls: Counter = Counter()


def local_path(url: str) -> str:
    """The local file that holds object ``url`` (``fakeos://bucket/key``)."""
    root = os.environ.get(ROOT_ENV)
    if not root:
        raise OSError(f"{ROOT_ENV} is not set: the fake object store has no root folder")
    if not url.startswith(_PREFIX):
        raise ValueError(f"not a {SCHEME} URL: {url}")
    return os.path.join(root, url[len(_PREFIX) :])


def _url(path: str) -> str:
    return _PREFIX + os.path.relpath(path, os.environ[ROOT_ENV]).replace(os.sep, "/")


def _maybe_fail(operation: str, path: str = "") -> None:
    """Raise ``OSError`` on the call of ``operation`` that ``$TAPEFIT_FAKEOS_FAIL`` names."""
    _calls[operation] += 1
    for rule in filter(None, os.environ.get(FAIL_ENV, "").split(",")):
        name, _, nth = rule.partition(":")
        name, _, text = name.partition("@")
        if name != operation or text not in path:
            continue
        key = f"{operation}@{text}"
        if text:
            _calls[key] += 1
        if _calls[key if text else operation] == int(nth or 1):
            raise OSError(f"injected {operation} failure (call {_calls[key if text else operation]}: {path})")


class FakeObjectStore(FileSystem):
    """Beam ``FileSystem`` for ``fakeos://``: flat objects under a local folder."""

    @classmethod
    def scheme(cls) -> str:
        """The URL scheme this filesystem serves."""
        return SCHEME

    def join(self, basepath: str, *paths: str) -> str:
        """Join with ``/``, as object stores do."""
        path = basepath.rstrip("/")
        for part in paths:
            path = f"{path}/{part.strip('/')}" if part else path + "/"
        return path

    def split(self, path: str) -> tuple[str, str]:
        """Split at the last ``/`` after the bucket."""
        if not path.startswith(_PREFIX):
            raise ValueError(f"not a {SCHEME} URL: {path}")
        head, _, tail = path[len(_PREFIX) :].rpartition("/")
        return (_PREFIX + head, tail) if head else (path, "")

    def mkdirs(self, path: str) -> None:
        """Object stores have no folders: nothing to create."""

    def has_dirs(self) -> bool:
        """No directories, only keys."""
        return False

    def _list(self, dir_or_prefix: str):  # noqa: ANN202 (a generator of FileMetadata)
        """Every object whose key starts with ``dir_or_prefix`` (recursive, objects only)."""
        prefix = local_path(dir_or_prefix)
        folder = prefix if os.path.isdir(prefix) and dir_or_prefix.endswith("/") else os.path.dirname(prefix)
        if not os.path.isdir(folder):
            return
        for dirpath, _, files in os.walk(folder):
            for name in files:
                path = os.path.join(dirpath, name)
                if path.startswith(prefix):
                    try:
                        yield FileMetadata(_url(path), os.path.getsize(path), os.path.getmtime(path))
                    except OSError:
                        pass

    def create(
        self, path: str, mime_type: str = "application/octet-stream", compression_type: str = CompressionTypes.AUTO
    ):  # noqa: ANN201
        """Open a new object for writing (its "folders" need no creating)."""
        _maybe_fail("create", path)
        local = local_path(path)
        os.makedirs(os.path.dirname(local), exist_ok=True)
        return self._wrap(open(local, "wb"), path, compression_type)

    def open(
        self, path: str, mime_type: str = "application/octet-stream", compression_type: str = CompressionTypes.AUTO
    ):  # noqa: ANN201
        """Open an object for reading."""
        local = local_path(path)
        if not os.path.isfile(local):
            raise BeamIOError("Open failed", {path: FileNotFoundError(path)})
        return self._wrap(open(local, "rb"), path, compression_type)

    @staticmethod
    def _wrap(raw, path: str, compression_type: str):  # noqa: ANN001, ANN205
        compression_type = FileSystem._get_compression_type(path, compression_type)  # noqa: SLF001
        if compression_type == CompressionTypes.UNCOMPRESSED:
            return raw
        return CompressedFile(raw, compression_type=compression_type)

    def copy(self, source_file_names: list[str], destination_file_names: list[str]) -> None:
        """Copy objects one by one."""
        errors = {}
        for source, destination in zip(source_file_names, destination_file_names, strict=True):
            try:
                _maybe_fail("copy", destination)
                target = local_path(destination)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(local_path(source), target)
            except Exception as error:  # noqa: BLE001
                errors[(source, destination)] = error
        if errors:
            raise BeamIOError("Copy operation failed", errors)

    def rename(self, source_file_names: list[str], destination_file_names: list[str]) -> None:
        """Copy then delete, object by object: there is no atomic or folder rename."""
        errors = {}
        for source, destination in zip(source_file_names, destination_file_names, strict=True):
            try:
                _maybe_fail("rename", destination)
                origin = local_path(source)
                if not os.path.isfile(origin):
                    raise FileNotFoundError(f"no object {source}")
                target = local_path(destination)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(origin, target)
                os.remove(origin)
            except Exception as error:  # noqa: BLE001
                errors[(source, destination)] = error
        if errors:
            raise BeamIOError("Rename operation failed", errors)

    def exists(self, path: str) -> bool:
        """True only for an object (a "folder" exists only as a prefix)."""
        return os.path.isfile(local_path(path))

    def size(self, path: str) -> int:
        """The object's size in bytes."""
        return os.path.getsize(self._object(path))

    def last_updated(self, path: str) -> float:
        """The object's update time."""
        return os.path.getmtime(self._object(path))

    def checksum(self, path: str) -> str:
        """The object's content hash (GCS reports CRC32C/MD5; a copy with an old mtime cannot fake it)."""
        with open(self._object(path), "rb") as handle:
            return hashlib.md5(handle.read()).hexdigest()  # noqa: S324 (not for security)

    def metadata(self, path: str) -> FileMetadata:
        """Size and update time of one object."""
        local = self._object(path)
        return FileMetadata(path, os.path.getsize(local), os.path.getmtime(local))

    def _object(self, path: str) -> str:
        local = local_path(path)
        if not os.path.isfile(local):
            raise BeamIOError(f"Object does not exist: {path}")
        return local

    def delete(self, paths: list[str]) -> None:
        """Delete objects; a path ending in ``/`` deletes every object under that prefix."""
        errors = {}
        for path in paths:
            try:
                _maybe_fail("delete", path)
                local = local_path(path)
                if path.endswith("/") and os.path.isdir(local):
                    shutil.rmtree(local)
                elif os.path.isfile(local):
                    os.remove(local)
                else:
                    raise FileNotFoundError(f"no object {path}")
            except Exception as error:  # noqa: BLE001
                errors[path] = error
        if errors:
            raise BeamIOError("Delete operation failed", errors)

    def report_lineage(self, path: str, lineage, level=None) -> None:  # noqa: ANN001
        """No lineage for a test store."""
