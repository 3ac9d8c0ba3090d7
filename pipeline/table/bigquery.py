"""BigQuery output: ``--output bigquery:PROJECT:DATASET.TABLE``.

The table has the columns of :data:`pipeline.table.SCHEMA` plus ``run_date`` (DATE),
and is day-partitioned on ``run_date``. Rows go in with BigQuery load jobs
(``WriteToBigQuery`` with ``FILE_LOADS``) into the partition decorator
``TABLE$YYYYMMDD`` with ``WRITE_TRUNCATE``: a rerun of a date replaces exactly that
date's rows and leaves every other date untouched. The table is created on first use.
The ``apache-beam[gcp]`` extra (``pip install 'tapefit[gcp]'``) is needed only when
the pipeline is built, never to parse or validate options.
"""

from __future__ import annotations

import datetime as dt
import math

import apache_beam as beam
import pyarrow as pa

from pipeline.config.output import parse_bigquery_output
from pipeline.config.settings import JobConfig
from pipeline.table.schema import SCHEMA

__all__ = ["WriteBigQuery", "bigquery_schema", "load_parameters", "to_bigquery_row"]

PARTITION_COLUMN = "run_date"
_TYPES = {
    pa.string(): "STRING",
    pa.float64(): "FLOAT",
    pa.int64(): "INTEGER",
    pa.bool_(): "BOOLEAN",
    pa.timestamp("us", tz="UTC"): "TIMESTAMP",
}


# The columns a table created before robust and weighted fits already has, in order; those
# after them in SCHEMA come after run_date, so an existing table only gains fields at its end.
_FIRST_COLUMNS = SCHEMA.get_field_index("reused_from") + 1


def bigquery_schema() -> dict:
    """The BigQuery table schema: :data:`pipeline.table.SCHEMA`'s first columns, ``run_date``, the added ones.

    Every column added to SCHEMA since the table's first release is NULLABLE and comes
    after ``run_date``: a load job with field addition allowed appends them to an
    existing table without touching its columns.

    Returns:
        A ``{"fields": [...]}`` dict as ``WriteToBigQuery`` and the BigQuery API take it.
    """
    fields = [
        {"name": field.name, "type": _TYPES[field.type], "mode": "NULLABLE" if field.nullable else "REQUIRED"}
        for field in SCHEMA
    ]
    fields.insert(_FIRST_COLUMNS, {"name": PARTITION_COLUMN, "type": "DATE", "mode": "REQUIRED"})
    return {"fields": fields}


def _json_value(value: object) -> object:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    if isinstance(value, float) and not math.isfinite(value):
        return None  # BigQuery's JSON load format has no NaN/inf; the fit never reports them
    return value


def to_bigquery_row(row: dict, run_date: str) -> dict:
    """Turn an output row into a BigQuery JSON row of :func:`bigquery_schema`.

    Args:
        row: A row of :data:`pipeline.table.SCHEMA`.
        run_date: The run's date, ``YYYY-MM-DD``, stored in the partition column.

    Returns:
        A dict of JSON-compatible values: timestamps as ``YYYY-MM-DD HH:MM:SS.ffffff UTC``,
        ``run_date`` as ``YYYY-MM-DD``, nulls kept as ``None``.
    """
    converted = {name: _json_value(row[name]) for name in SCHEMA.names}
    converted[PARTITION_COLUMN] = run_date
    return converted


def load_parameters() -> dict:
    """Extra load-job settings: day partitions on ``run_date``, clustered by status."""
    return {
        "timePartitioning": {"type": "DAY", "field": PARTITION_COLUMN},
        "clustering": {"fields": ["status", "dataset"]},
    }


class WriteBigQuery(beam.PTransform):
    """Replaces this run's ``run_date`` partition of a BigQuery table with the rows.

    Input: a dict with ``rows`` (output rows), as :class:`pipeline.graph.fit_datasets.FitDatasets`
    returns it. Null-key counts are not written (they are in the ``null_key_rows`` metric).

    Args:
        config: The job's configuration; ``config.output`` is ``bigquery:PROJECT:DATASET.TABLE``.
    """

    def __init__(self, config: JobConfig) -> None:
        super().__init__()
        self._config = config

    def expand(self, results: dict[str, beam.PCollection]) -> beam.PCollection:
        """Convert the rows and load them into the partition with ``WRITE_TRUNCATE``."""
        from apache_beam.io.gcp.bigquery import BigQueryDisposition, WriteToBigQuery

        target = parse_bigquery_output(self._config.output)
        run_date = self._config.run_date
        return (
            results["tables"]
            | "Rows" >> beam.FlatMap(lambda table: table.to_pylist())
            | "ToBigQueryRows" >> beam.Map(to_bigquery_row, run_date)
            | "LoadPartition"
            >> WriteToBigQuery(
                table=target.partition(run_date),
                schema=bigquery_schema(),
                method=WriteToBigQuery.Method.FILE_LOADS,
                create_disposition=BigQueryDisposition.CREATE_IF_NEEDED,
                write_disposition=BigQueryDisposition.WRITE_TRUNCATE,
                additional_bq_parameters=load_parameters(),
            )
        )
