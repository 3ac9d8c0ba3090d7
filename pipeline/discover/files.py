"""Listing an input's files: what a glob matches, which links are followed, what is skipped and why.

Paths keep the spelling the input gave them (they become sources and dataset ids); only
comparisons use a path's one true spelling, :func:`normalize`: ``realpath`` on a local
disk, a normalized URL on other filesystems.

On a local disk the listing follows symbolic links to folders (a link that leads back to
a folder above it is a loop, and skipped), and a file it cannot read as input — a
dangling link, a folder it may not list — is *skipped*: named, with the reason, so that
nothing is left out silently. Other filesystems (``gs://``, ``s3://``) are listed through
Beam's ``FileSystems``; they have no links.

Glob patterns are matched by :func:`glob_regex`: ``**`` is any run of characters, ``*``
any run without ``/``, ``?`` one character but ``/``, ``[...]`` a set, and nothing else
is special (a backslash is a plain character, as on any POSIX filesystem; ``[[]`` matches
a literal ``[``).
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
from dataclasses import dataclass

from apache_beam.io.filesystems import FileSystems

__all__ = [
    "WILDCARDS",
    "FileInfo",
    "Listing",
    "escape_glob",
    "existing_kind",
    "glob_regex",
    "is_local",
    "list_files",
    "normalize",
    "within",
]

WILDCARDS = "*?["


@dataclass(frozen=True)
class FileInfo:
    """One input file as listed.

    Attributes:
        path: The path, spelled as the input spelled it.
        size: Size in bytes.
        modified: Last modification time, seconds since the epoch (on object stores the
            server's update time, which a client cannot set).
        identity: On a local disk ``"INODE:CTIME_NS"``, what a copy that keeps size and
            mtime (``cp -p``, ``rsync -t``, ``touch -r``) cannot fake; ``""`` on object stores.
    """

    path: str
    size: int
    modified: float
    identity: str = ""


@dataclass(frozen=True)
class Listing:
    """What a listing found.

    Attributes:
        files: The matching files, sorted by path.
        skipped: ``(path, reason)`` of what matched but cannot be read as input, sorted.
    """

    files: tuple[FileInfo, ...]
    skipped: tuple[tuple[str, str], ...] = ()


def is_local(path: str) -> bool:
    """Whether ``path`` is on the local disk (no scheme, or ``file://``)."""
    return FileSystems.get_scheme(path) in (None, "file")


def _local(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def normalize(path: str) -> str:
    """The one spelling of ``path`` for comparisons: ``realpath`` locally, a normalized URL elsewhere.

    Locally, relative paths, ``.``/``..`` and symbolic links (also of folders that do not
    exist yet) are resolved. Elsewhere ``scheme://`` is kept, and ``.``, ``..``, doubled
    and trailing slashes of the rest are normalized, without contacting the filesystem.
    """
    if is_local(path):
        return os.path.realpath(_local(path) or ".")
    scheme, rest = path.split("://", 1)
    return f"{scheme}://{posixpath.normpath(rest or '.').lstrip('/')}"


def within(path: str, folder: str) -> bool:
    """Whether normalized ``path`` is ``folder`` itself or lies below it (both normalized)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def escape_glob(path: str) -> str:
    """``path`` as a glob that matches exactly it (``*``, ``?``, ``[`` each inside ``[...]``)."""
    return re.sub(r"([*?\[])", r"[\1]", path)


def _translate(glob: str) -> str:
    out, i, n = [], 0, len(glob)
    while i < n:
        char = glob[i]
        i += 1
        if char == "*":
            if i < n and glob[i] == "*":
                out.append(".*")
                i += 1
            else:
                out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            j = i + (i < n and glob[i] in "!^")
            j += j < n and glob[j] == "]"
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape("["))
                continue
            members = glob[i:j]
            i = j + 1
            negate = members[:1] in ("!", "^")
            members = members[1:] if negate else members
            members = re.sub(r"([\\\[\]&~|^])", r"\\\1", members)
            out.append("[" + ("^" if negate else "") + members + "]")
        else:
            out.append(re.escape(char))
    return "".join(out)


@functools.lru_cache(maxsize=64)
def glob_regex(glob: str) -> re.Pattern:
    """The compiled regular expression of a glob (see the module's docstring)."""
    return re.compile(f"(?s:{_translate(glob)})\\Z")


@functools.lru_cache(maxsize=16)
def _remote_kind(path: str) -> str | None:
    if FileSystems.exists(path):
        return "file"
    found = FileSystems.match([escape_glob(path.rstrip("/")) + "/**"], limits=[1])[0].metadata_list
    return "directory" if found else None


def existing_kind(path: str) -> str | None:
    """``"directory"``, ``"file"`` or ``None`` (nothing there) for ``path`` as written.

    A local dangling link is a ``"file"`` (that is what it names). On object stores a
    "directory" is a prefix that objects lie below.
    """
    if is_local(path):
        local = _local(path) or "."
        return "directory" if os.path.isdir(local) else "file" if os.path.lexists(local) else None
    return _remote_kind(path)


def _segments_match(glob_parts: list[str], depth: int, name: str) -> bool:
    """Whether a folder ``name`` at ``depth`` below the root can hold files the glob matches."""
    for part in glob_parts[: depth + 1]:
        if "**" in part:
            return True
    return depth < len(glob_parts) - 1 and bool(glob_regex(glob_parts[depth]).match(name))


def _walk_local(root: str, glob: str, suffix: str, hidden: tuple[str, ...], exclude: str | None) -> Listing:
    """List a local folder below ``root`` whose relative paths match ``glob``, following folder links."""
    start = _local(root) or "."
    prefix = "" if not root else root.rstrip("/") + "/"
    parts = glob.split("/")
    whole = glob_regex(glob)
    files, skipped = [], []
    stack = [(start, "", 0, (os.path.realpath(start),))]
    while stack:
        folder, relative, depth, above = stack.pop()
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as error:
            skipped.append((prefix + relative.rstrip("/"), f"cannot be listed: {error.strerror or error}"))
            continue
        for entry in entries:
            if entry.name.startswith(hidden):
                continue
            name = relative + entry.name
            try:
                is_folder = entry.is_dir()
            except OSError:
                is_folder = False
            if is_folder:
                if not _segments_match(parts, depth, entry.name):
                    continue
                real = os.path.realpath(entry.path)
                if exclude and within(real, exclude):
                    continue
                if real in above:
                    skipped.append((prefix + name, "symbolic link loop (it leads back to a folder above it)"))
                    continue
                stack.append((entry.path, name + "/", depth + 1, (*above, real)))
                continue
            if not (entry.name.lower().endswith(suffix) and whole.match(name)):
                continue
            try:
                stat = os.stat(entry.path)
            except FileNotFoundError:
                if entry.is_symlink():
                    skipped.append((prefix + name, "dangling symbolic link"))
                continue  # gone since it was listed
            except OSError as error:
                skipped.append((prefix + name, f"cannot be read: {error.strerror or error}"))
                continue
            files.append(FileInfo(prefix + name, stat.st_size, stat.st_mtime, f"{stat.st_ino}:{stat.st_ctime_ns}"))
    return Listing(tuple(sorted(files, key=lambda f: f.path)), tuple(sorted(skipped)))


def list_files(
    root: str, glob: str, suffix: str = ".parquet", hidden: tuple[str, ...] = (".", "_"), exclude: str | None = None
) -> Listing:
    """List the files below ``root`` whose paths relative to it match ``glob`` and end with ``suffix``.

    The suffix is compared in any case. Names below the root that start with one of
    ``hidden`` are left out, and so is everything under ``exclude`` (a
    :func:`normalize`-d folder: the output table).

    Args:
        root: The folder to list (``""``: the current one), as the input spells it.
        glob: The pattern relative to the root (``**`` for everything below it).
        suffix: The file name ending of input files, in any case.
        hidden: Name prefixes that are never input.
        exclude: A normalized folder whose files are never input, or ``None``.

    Returns:
        The files found and, on a local disk, what was skipped and why.

    Raises:
        OSError: (or Beam's ``BeamIOError``) if a remote filesystem cannot be listed.
    """
    if is_local(root or "."):
        return _walk_local(root, glob, suffix.lower(), hidden, exclude)
    whole = glob_regex(glob)
    prefix = root.rstrip("/") + "/"
    found = []
    for meta in FileSystems.match([escape_glob(prefix) + "**"])[0].metadata_list:
        relative = meta.path[len(prefix) :]
        if not (meta.path.startswith(prefix) and meta.path.lower().endswith(suffix.lower()) and whole.match(relative)):
            continue
        if any(part.startswith(hidden) for part in relative.split("/")):
            continue
        if exclude and within(normalize(meta.path), exclude):
            continue
        found.append(FileInfo(meta.path, meta.size_in_bytes, meta.last_updated_in_seconds))
    return Listing(tuple(sorted(found, key=lambda f: f.path)))
