"""Where an input's Parquet files are, and which dataset each belongs to.

The input is a directory (every ``*.parquet`` below it), a glob, or one Parquet file.
A path that exists is taken as it is, before any glob expansion: a folder is a folder
whatever its name ends with (a Spark ``table.parquet/``), and ``[...]`` in an existing
name is no wildcard. Dataset ids are paths relative to the *input root*: the directory
itself, or for a glob the directory part before the first wildcard, ``/``-separated,
without the ``.parquet`` suffix (in any case). As in Spark and pyarrow datasets,
anything below the root whose name starts with ``.`` or ``_`` (``_SUCCESS``, ``.crc``,
staging folders) is ignored, and so is the output table when it lies inside the input,
however either is spelled (paths are compared resolved: :func:`~pipeline.discover.files.normalize`).
Listing goes through :mod:`pipeline.discover.files`: links to folders are followed on a
local disk, and what cannot be read is named as *skipped*.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config.errors import ConfigError
from pipeline.discover.files import (
    WILDCARDS,
    FileInfo,
    Listing,
    escape_glob,
    existing_kind,
    glob_regex,
    list_files,
    normalize,
    within,
)

__all__ = [
    "DatasetRef",
    "FileInfo",
    "InputLayout",
    "Listing",
    "directory_ref",
    "file_ref",
    "input_layout",
    "list_dataset_files",
    "list_input",
    "parent",
    "unique_ids",
]

_SUFFIX = ".parquet"
_HIDDEN = (".", "_")


@dataclass(frozen=True)
class InputLayout:
    """Where an input pattern's files are and how their ids are formed.

    Attributes:
        root: Prefix stripped from paths to form ids (no trailing ``/``).
        pattern: The input as understood: a glob, ``ROOT/**`` for a directory, or the file.
        exclude: A folder whose files are never input (the output table), or ``None``.
        below: The glob that paths relative to the root must match (``**``: all of them;
            a literal file name is escaped); by default the pattern below the root.
    """

    root: str
    pattern: str
    exclude: str | None = None
    below: str | None = None

    @property
    def glob(self) -> str:
        """The glob relative to the root that input files match."""
        if self.below is not None:
            return self.below
        return self.pattern[len(self.root) + 1 :] if self.root else self.pattern

    def relative(self, path: str) -> str:
        """Return ``path`` relative to the root, ``/``-separated."""
        prefix = self.root + "/"
        return path[len(prefix) :] if path.startswith(prefix) else path

    def accepts(self, path: str) -> bool:
        """Whether ``path`` is an input Parquet file (matched, not hidden, not the output)."""
        relative = self.relative(path)
        if not (path.lower().endswith(_SUFFIX) and glob_regex(self.glob).match(relative)):
            return False
        if any(part.startswith(_HIDDEN) for part in relative.split("/")):
            return False
        return not (self.exclude and within(normalize(parent(path) or "."), normalize(self.exclude)))


@dataclass(frozen=True)
class DatasetRef:
    """One dataset to fit: its id, where it came from and the files holding its rows.

    Attributes:
        dataset: The dataset id written to the output table.
        source: The file or directory it came from (the input pattern for keyed data).
        paths: Its Parquet files, sorted, so results never depend on listing order.
        error: Why it cannot be fitted although its files were found (its id is not
            unique), or ``None``; readers turn it into a ``failed`` row without reading.
    """

    dataset: str
    source: str
    paths: tuple[str, ...]
    error: str | None = None


def input_layout(input_pattern: str, output: str | None = None) -> InputLayout:
    """Work out the root and match pattern of an ``--input`` value.

    An existing path is taken literally (a directory, whatever its name, or a file);
    otherwise a value with a wildcard (``*?[``) is a glob, one ending in ``.parquet``
    a file, and anything else a directory.

    Args:
        input_pattern: A directory, a glob, or a single ``.parquet`` file.
        output: The output table directory, excluded from the input when inside it.

    Returns:
        The layout used for listing and for dataset ids.
    """
    path = input_pattern.rstrip("/") or input_pattern
    wild = any(c in input_pattern for c in WILDCARDS)
    kind = "directory" if input_pattern.endswith("/") else None
    if kind is None and (wild or path.lower().endswith(_SUFFIX)):
        kind = existing_kind(path)
    if wild and kind is None:
        first = min(i for i in (input_pattern.find(c) for c in WILDCARDS) if i >= 0)
        root = parent(input_pattern[:first])
        return InputLayout(root=root, pattern=input_pattern, exclude=output)
    if kind == "directory" or (kind is None and not path.lower().endswith(_SUFFIX)):
        return InputLayout(root=path, pattern=path + "/**", exclude=output, below="**")
    root, name = parent(path), path.rsplit("/", 1)[-1]
    return InputLayout(root=root, pattern=path, exclude=output, below=escape_glob(name))


def file_ref(layout: InputLayout, path: str) -> DatasetRef:
    """The dataset of one file (``--group_by file``)."""
    return DatasetRef(layout.relative(path)[: -len(_SUFFIX)], path, (path,))


def directory_ref(layout: InputLayout, directory: str, paths: list[str]) -> DatasetRef:
    """The dataset of one directory's part files (``--group_by directory``)."""
    dataset = "." if directory == layout.root else layout.relative(directory)
    return DatasetRef(dataset, directory, tuple(sorted(paths)))


def unique_ids(layout: InputLayout, refs: list[DatasetRef]) -> list[DatasetRef]:
    """Make dataset ids unique: refs that share an id become one ref that fails, naming every file.

    ``a.parquet`` and ``a.PARQUET`` in one folder both have the id ``a``; fitting either
    one under that id would hide the other, so neither is fitted.
    """
    by_id: dict[str, list[DatasetRef]] = {}
    for ref in refs:
        by_id.setdefault(ref.dataset, []).append(ref)
    unique = []
    for dataset, same in by_id.items():
        if len(same) == 1:
            unique.append(same[0])
            continue
        paths = tuple(sorted(path for ref in same for path in ref.paths))
        names = ", ".join(sorted(layout.relative(ref.source) for ref in same))
        reason = (
            f"{len(same)} files have the dataset id {dataset!r}: {names} (an id is the path without its "
            ".parquet suffix, in any case); rename all but one"
        )
        unique.append(DatasetRef(dataset, min(ref.source for ref in same), paths, reason))
    return unique


def parent(path: str) -> str:
    """The folder part of ``path`` (``""`` for a bare name)."""
    return path.rsplit("/", 1)[0] if "/" in path else ""


def list_input(layout: InputLayout) -> Listing:
    """List the input's Parquet files, and what was skipped and why.

    Raises:
        ConfigError: if the input lies inside the output table (tapefit never reads its
            own output, so nothing would be left to read).
        OSError: if the filesystem cannot be listed.
    """
    exclude = normalize(layout.exclude) if layout.exclude else None
    if exclude and within(normalize(layout.root or "."), exclude):
        raise ConfigError(
            f"--input {layout.pattern} lies inside the output table --output {layout.exclude}, "
            "and tapefit never reads its own output; write the table somewhere else"
        )
    return list_files(layout.root, layout.glob, _SUFFIX, _HIDDEN, exclude)


def list_dataset_files(layout: InputLayout) -> list[str]:
    """List the input's Parquet files now (used before launching, to fail fast).

    Raises:
        ConfigError: if the input lies inside the output table.
        OSError: if the filesystem cannot be listed.
    """
    return [found.path for found in list_input(layout).files]
