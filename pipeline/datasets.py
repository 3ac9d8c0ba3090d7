"""Finding the input's Parquet files and turning them into datasets.

The input is a directory (every ``*.parquet`` below it), a glob, or one Parquet file.
Dataset ids are paths relative to the *input root*: the directory itself, or for a
glob the directory part before the first wildcard, ``/``-separated, without the
``.parquet`` suffix. As in Spark and pyarrow datasets, anything below the root whose
name starts with ``.`` or ``_`` (``_SUCCESS``, ``.crc``, staging folders) is ignored,
and so is the output table when it lies inside the input.

All listing goes through Beam's ``FileSystems``, so remote filesystems work too.
"""

from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems

from pipeline.options import GroupBy, JobConfig

__all__ = [
    "DatasetRef",
    "DiscoverDatasets",
    "InputLayout",
    "directory_ref",
    "file_ref",
    "input_layout",
    "list_dataset_files",
]

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


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def list_dataset_files(layout: InputLayout) -> list[str]:
    """List the input's Parquet files now (used before launching, to fail fast).

    Raises:
        OSError: if the filesystem cannot be listed.
    """
    matched = FileSystems.match([layout.pattern])[0].metadata_list
    return sorted(meta.path for meta in matched if layout.accepts(meta.path))


class DiscoverDatasets(beam.PTransform):
    """Lists the input inside the pipeline and emits what the readers need.

    For ``file`` and ``directory`` grouping the output is one :class:`DatasetRef` per
    dataset; for ``column:`` grouping it is the list of file paths (the datasets only
    appear once their rows are read). Listing runs on a worker, so a cloud runner lists
    a bucket itself; a ``Reshuffle`` spreads the work across workers.

    Args:
        config: The job's configuration.
    """

    def __init__(self, config: JobConfig) -> None:
        super().__init__()
        self._config = config

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        """Return DatasetRefs (file/directory grouping) or paths (column grouping)."""
        layout = input_layout(self._config.input, self._config.output)
        paths = (
            pbegin
            | "Pattern" >> beam.Create([layout.pattern])
            | "Match" >> fileio.MatchAll()
            | "Paths" >> beam.Map(lambda meta: meta.path)
            | "OnlyParquet" >> beam.Filter(layout.accepts)
        )
        if self._config.group_by == GroupBy.FILE:
            found = paths | "FileDatasets" >> beam.Map(lambda path: file_ref(layout, path))
        elif self._config.group_by == GroupBy.DIRECTORY:
            found = (
                paths
                | "ByDirectory" >> beam.Map(lambda path: (_parent(path), path))
                | "GroupParts" >> beam.GroupByKey()
                | "DirectoryDatasets" >> beam.MapTuple(lambda folder, parts: directory_ref(layout, folder, list(parts)))
            )
        else:
            found = paths
        return found | "Spread" >> beam.Reshuffle()
