"""Finding the input's Parquet files and turning them into datasets.

The input is a directory (every ``*.parquet`` below it), a glob, or one Parquet file.
Dataset ids are paths relative to the *input root*: the directory itself, or for a
glob the directory part before the first wildcard, ``/``-separated, without the
``.parquet`` suffix. As in Spark and pyarrow datasets, anything below the root whose
name starts with ``.`` or ``_`` (``_SUCCESS``, ``.crc``, staging folders) is ignored,
and so is the output table when it lies inside the input.

All listing goes through Beam's ``FileSystems``, so remote filesystems work too.
Datasets travel in batches (:class:`DiscoverDatasets`): a few Beam elements per
thousand datasets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from pipeline.options import GroupBy, JobConfig

__all__ = [
    "DatasetRef",
    "DiscoverDatasets",
    "Expected",
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
class Expected:
    """How many datasets discovery found (file and directory grouping).

    Every one must end as exactly one row; the commit checks this before making the
    partition visible.

    Attributes:
        datasets: The number of datasets found.
    """

    datasets: int


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


# A read batch holds at most this many bytes of Parquet, so that files of any size
# spread over the workers (the dataset count is capped by --batch_size).
BATCH_BYTES = 32 << 20
_REUSED_PER_TABLE = 50_000


def _batches(items: list, sizes: list[int], most: int) -> Iterator[list]:
    """Cut ``items`` into runs of at most ``most`` items and about ``BATCH_BYTES``."""
    batch: list = []
    weight = 0
    for item, size in zip(items, sizes, strict=True):
        if batch and (len(batch) >= most or weight + size > BATCH_BYTES):
            yield batch
            batch, weight = [], 0
        batch.append(item)
        weight += size
    if batch:
        yield batch


class _ListBatchesFn(beam.DoFn):
    """Lists the input once; records fingerprints; yields batches (and reused rows)."""

    def __init__(self, config: JobConfig) -> None:
        self._config = config
        # gram moments of directory datasets are read part by part and merged later
        self._parts = config.group_by == GroupBy.DIRECTORY and config.fit.loss_form == "gram"

    def process(self, pattern: str) -> Iterator[list | pa.Table]:
        """Yield lists of DatasetRefs (file/directory grouping) or of paths (column).

        With ``--incremental``, the previous rows of unchanged datasets are yielded as
        Arrow tables instead, and those datasets are not read at all.
        """
        from pipeline.history import WHOLE_INPUT, fingerprint, load_previous, settings_key, write_fingerprints
        from pipeline.table import staging_dir

        config = self._config
        layout = input_layout(config.input, config.output)
        found = sorted(
            (meta.path, meta.size_in_bytes, meta.last_updated_in_seconds)
            for meta in FileSystems.match([pattern])[0].metadata_list
            if layout.accepts(meta.path)
        )
        size = {path: length for path, length, _ in found}
        stamp = {path: (path, length, modified) for path, length, modified in found}
        settings = settings_key(config)
        if config.group_by == GroupBy.FILE:
            items = [file_ref(layout, path) for path, _, _ in found]
        elif config.group_by == GroupBy.COLUMN:
            items = [path for path, _, _ in found]
        else:
            folders: dict[str, list[str]] = {}
            for path, _, _ in found:
                folders.setdefault(_parent(path), []).append(path)
            items = [directory_ref(layout, folder, paths) for folder, paths in folders.items()]
        if config.group_by == GroupBy.COLUMN:
            prints = {WHOLE_INPUT: fingerprint(settings, list(stamp.values()))}
        else:
            prints = {ref.dataset: fingerprint(settings, [stamp[p] for p in ref.paths]) for ref in items}
            yield Expected(len(items))
        if not config.output.startswith("bigquery:"):  # BigQuery tables keep no fingerprints
            write_fingerprints(staging_dir(config), prints)
        if config.incremental:
            items = yield from self._reuse(items, prints, load_previous(config))
        if self._parts:  # one ref per part file, merged again by dataset after reading
            items = [DatasetRef(ref.dataset, ref.source, (path,)) for ref in items for path in ref.paths]
        weights = [size[item] if isinstance(item, str) else sum(size[p] for p in item.paths) for item in items]
        yield from _batches(items, weights, config.batch_size)

    def _reuse(self, items: list, prints: dict[str, str], previous) -> Iterator[pa.Table]:  # noqa: ANN001
        """Yield the reused rows; return the items that still need a fit."""
        from pipeline.fit import Status
        from pipeline.history import WHOLE_INPUT

        if previous is None or not previous.fingerprints:
            return items
        statuses = dict(zip(*(previous.rows.column(c).to_pylist() for c in ("dataset", "status")), strict=True))
        if self._config.group_by == GroupBy.COLUMN:  # all keys share the files: all or nothing
            if previous.fingerprints.get(WHOLE_INPUT) != prints[WHOLE_INPUT]:
                return items
            reused, items = list(statuses), []
        else:
            unchanged = {
                ref.dataset
                for ref in items
                if previous.fingerprints.get(ref.dataset) == prints[ref.dataset]
                and statuses.get(ref.dataset, Status.FAILED) != Status.FAILED
            }
            reused = sorted(unchanged)
            items = [ref for ref in items if ref.dataset not in unchanged]
        Metrics.counter("tapefit", "datasets_reused").inc(len(reused))
        for start in range(0, len(reused), _REUSED_PER_TABLE):
            yield previous.reused_rows(reused[start : start + _REUSED_PER_TABLE], self._config.run_id)
        return items


class DiscoverDatasets(beam.PTransform):
    """Lists the input inside the pipeline and emits batches of what the readers need.

    With ``--incremental``, unchanged datasets arrive instead as Arrow tables of
    their reused rows (:mod:`pipeline.history`); for file and directory grouping one
    :class:`Expected` element tells how many datasets there are in all. Otherwise, for ``file`` and
    ``directory`` grouping each element is a list of
    :class:`DatasetRef` (with ``parts``, one ref per part file of a directory); for
    ``column:`` grouping it is a list of file paths (the datasets only appear once
    their rows are read). With ``--loss_form gram``, directory datasets are emitted
    one ref per part file, so their parts are read in parallel. Batches hold at most ``batch_size`` datasets and about
    ``BATCH_BYTES`` of Parquet. Listing runs on a worker, so a cloud runner lists a
    bucket itself; a ``Reshuffle`` spreads the batches across workers.

    Args:
        config: The job's configuration.
    """

    def __init__(self, config: JobConfig) -> None:
        super().__init__()
        self._config = config

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        """Return batches of DatasetRefs (file/directory grouping) or of paths (column)."""
        layout = input_layout(self._config.input, self._config.output)
        return (
            pbegin
            | "Pattern" >> beam.Create([layout.pattern])
            | "ListBatches" >> beam.ParDo(_ListBatchesFn(self._config))
            | "Spread" >> beam.Reshuffle()
        )
