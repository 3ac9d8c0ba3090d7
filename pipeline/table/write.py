"""Writing the output partition: staged Parquet files, a summary, then one commit.

Rows are written to ``TABLE_DIR/_staging/RUN_ID/run_date=D/``; once every file is
written, one step runs :func:`pipeline.table.commit.commit_partition` on the list of
files, which checks them, adds the manifest and makes the partition visible at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from pipeline.config.settings import JobConfig
from pipeline.discover.listing import Expected, merge_expected
from pipeline.fit.result import Status
from pipeline.table.commit import commit_partition
from pipeline.table.paths import staging_dir
from pipeline.table.schema import SCHEMA

__all__ = ["SummarizeRows", "WriteTable"]


class SummarizeRows(beam.CombineFn):
    """Counts datasets per status and rows used/dropped; mergeable across workers.

    Inputs are Arrow tables of output rows (or single row dicts).
    """

    def create_accumulator(self) -> dict:
        """Return an empty tally."""
        return {"datasets": 0, "reused": 0, "rows_used": 0, "rows_dropped": 0, **{status: 0 for status in Status.ALL}}

    def add_input(self, tally: dict, rows: pa.Table | dict) -> dict:
        """Count a table of output rows (or one row)."""
        if isinstance(rows, dict):
            rows = pa.Table.from_pylist([rows], schema=SCHEMA)
        statuses = rows.column("status").to_pylist()
        n_rows = rows.column("n_rows").to_pylist()
        tally["datasets"] += len(statuses)
        for status, used in zip(statuses, n_rows, strict=True):
            tally[status] += 1
            if status != Status.FAILED:  # a failed dataset's rows were not used by any fit
                tally["rows_used"] += used
        tally["rows_dropped"] += sum(rows.column("n_dropped").to_pylist())
        tally["reused"] += rows.num_rows - rows.column("reused_from").null_count
        return tally

    def merge_accumulators(self, tallies: list[dict]) -> dict:
        """Add tallies key by key."""
        tallies = iter(tallies)
        merged = next(tallies)
        for tally in tallies:
            for key, value in tally.items():
                merged[key] += value
        return merged

    def extract_output(self, tally: dict) -> dict:
        """Return the tally as is."""
        return tally


class _CommitFn(beam.DoFn):
    """Runs :func:`commit_partition` once, on the list of all written files."""

    def __init__(self, config: JobConfig) -> None:
        self._config = config

    def process(self, files: list[str], summary: dict, null_key_rows: int, expected: Expected) -> Iterator[dict]:
        now = dt.datetime.now(dt.timezone.utc)
        yield commit_partition(self._config, files, summary, null_key_rows, now, expected)


class WriteTable(beam.PTransform):
    """Writes the rows as this run's partition and commits it; outputs the manifest.

    Input: a dict with ``tables`` (Arrow tables of output rows), ``null_keys``
    (null-key row counts) and ``expected`` (:class:`~pipeline.discover.listing.Expected`:
    the ids found, the files skipped), as :class:`pipeline.graph.fit_datasets.FitDatasets`
    returns it. The commit refuses a partition whose dataset ids are not exactly the
    ids found, each once.

    Args:
        config: The job's configuration.
    """

    def __init__(self, config: JobConfig) -> None:
        super().__init__()
        self._config = config

    def expand(self, results: dict[str, beam.PCollection]) -> beam.PCollection:
        """Write Parquet to the staging folder, then commit it with the manifest."""
        tables = results["tables"]
        files = tables | "WriteParquet" >> beam.io.WriteToParquetBatched(
            FileSystems.join(staging_dir(self._config), f"part-{self._config.run_id}"),
            SCHEMA,
            codec="snappy",
            file_name_suffix=".parquet",
        )
        summary = tables | "Summarize" >> beam.CombineGlobally(SummarizeRows())
        null_keys = results["null_keys"] | "SumNullKeys" >> beam.CombineGlobally(sum)
        expected = results["expected"] | "SumExpected" >> beam.CombineGlobally(merge_expected)
        return (
            files
            | "AllFiles" >> beam.combiners.ToList()
            | "Commit"
            >> beam.ParDo(
                _CommitFn(self._config),
                beam.pvalue.AsSingleton(summary),
                beam.pvalue.AsSingleton(null_keys),
                beam.pvalue.AsSingleton(expected),
            )
        )
