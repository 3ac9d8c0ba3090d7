"""Where an input's Parquet files are, and which dataset each belongs to.

The input is a directory (every ``*.parquet`` below it), a glob, or one Parquet file.
Dataset ids are paths relative to the *input root*: the directory itself, or for a
glob the directory part before the first wildcard, ``/``-separated, without the
``.parquet`` suffix. As in Spark and pyarrow datasets, anything below the root whose
name starts with ``.`` or ``_`` (``_SUCCESS``, ``.crc``, staging folders) is ignored,
and so is the output table when it lies inside the input. Listing goes through
Beam's ``FileSystems``, so remote filesystems work too.
"""

from __future__ import annotations

from dataclasses import dataclass

from apache_beam.io.filesystems import FileSystems

__all__ = ["DatasetRef", "InputLayout", "directory_ref", "file_ref", "input_layout", "list_dataset_files", "parent"]

_SUFFIX = ".parquet"
_WILDCARDS = "*?["


@dataclass(frozen=True)
class InputLayout:
    """Where an input pattern's files are and how their ids are formed.

    Attributes:
        root: Prefix stripped from paths to form ids (no trailing ``/``).
        pattern: The pattern handed to ``FileSystems.match``.
        exclude: A prefix whose files are never input (the output table), or ``None``.
    """

    root: str
    pattern: str
    exclude: str | None = None

    def relative(self, path: str) -> str:
        """Return ``path`` relative to the root, ``/``-separated."""
        prefix = self.root + "/"
        return path[len(prefix) :] if path.startswith(prefix) else path

    def accepts(self, path: str) -> bool:
        """Whether ``path`` is an input Parquet file (not hidden, not the output)."""
        if not path.lower().endswith(_SUFFIX):
            return False
        if self.exclude and (path + "/").startswith(self.exclude + "/"):
            return False
        return not any(part.startswith((".", "_")) for part in self.relative(path).split("/"))


@dataclass(frozen=True)
class DatasetRef:
    """One dataset to fit: its id, where it came from and the files holding its rows.

    Attributes:
        dataset: The dataset id written to the output table.
        source: The file or directory it came from (the input pattern for keyed data).
        paths: Its Parquet files, sorted, so results never depend on listing order.
    """

    dataset: str
    source: str
    paths: tuple[str, ...]


def input_layout(input_pattern: str, output: str | None = None) -> InputLayout:
    """Work out the root and match pattern of an ``--input`` value.

    Args:
        input_pattern: A directory, a glob, or a single ``.parquet`` file.
        output: The output table directory, excluded from the input when inside it.

    Returns:
        The layout used for listing and for dataset ids.
    """
    first = min((i for i in (input_pattern.find(c) for c in _WILDCARDS) if i >= 0), default=-1)
    if first >= 0:
        root = input_pattern[:first].rsplit("/", 1)[0] if "/" in input_pattern[:first] else ""
        return InputLayout(root=root, pattern=input_pattern, exclude=output)
    if input_pattern.lower().endswith(_SUFFIX):
        root = input_pattern.rsplit("/", 1)[0] if "/" in input_pattern else ""
        return InputLayout(root=root, pattern=input_pattern, exclude=output)
    root = input_pattern.rstrip("/") or input_pattern
    return InputLayout(root=root, pattern=root + "/**", exclude=output)


def file_ref(layout: InputLayout, path: str) -> DatasetRef:
    """The dataset of one file (``--group_by file``)."""
    return DatasetRef(layout.relative(path)[: -len(_SUFFIX)], path, (path,))


def directory_ref(layout: InputLayout, directory: str, paths: list[str]) -> DatasetRef:
    """The dataset of one directory's part files (``--group_by directory``)."""
    dataset = "." if directory == layout.root else layout.relative(directory)
    return DatasetRef(dataset, directory, tuple(sorted(paths)))


def parent(path: str) -> str:
    """The folder part of ``path`` (``""`` for a bare name)."""
    return path.rsplit("/", 1)[0] if "/" in path else ""


def list_dataset_files(layout: InputLayout) -> list[str]:
    """List the input's Parquet files now (used before launching, to fail fast).

    Raises:
        OSError: if the filesystem cannot be listed.
    """
    matched = FileSystems.match([layout.pattern])[0].metadata_list
    return sorted(meta.path for meta in matched if layout.accepts(meta.path))
