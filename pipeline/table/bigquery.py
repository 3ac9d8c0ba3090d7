"""BigQuery output: ``--output bigquery:PROJECT:DATASET.TABLE``.

The table has the columns of :data:`pipeline.table.SCHEMA` plus ``run_date`` (DATE),
and is day-partitioned on ``run_date``. Rows go in with BigQuery load jobs
(``WriteToBigQuery`` with ``FILE_LOADS``) into the partition decorator
``TABLE$YYYYMMDD`` with ``WRITE_TRUNCATE``: a rerun of a date replaces exactly that
date's rows and leaves every other date untouched. The table is created on first use,
and an existing one gains new NULLABLE columns (``ALLOW_FIELD_ADDITION``).

Before anything is loaded the rows' dataset ids are checked against what discovery
found (:func:`pipeline.table.ids.check_ids`), and a run with no rows is refused: file
loads issue no load job for zero rows, so the date's ``WRITE_TRUNCATE`` would never
happen and the previous rows of that date would stay. Either refusal fails the run
(exit 1) and loads nothing, so the partition is left as it was.
The ``apache-beam[gcp]`` extra (``pip install 'tapefit[gcp]'``) is needed only when
the pipeline is built, never to parse or validate options.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

import apache_beam as beam
import pyarrow as pa

from pipeline.config.output import parse_bigquery_output
from pipeline.config.settings import JobConfig
from pipeline.discover.listing import merge_expected
from pipeline.table.ids import check_ids
from pipeline.table.schema import SCHEMA

__all__ = ["LEFT_AS_IT_WAS", "WriteBigQuery", "bigquery_schema", "check_rows", "load_parameters", "to_bigquery_row"]

PARTITION_COLUMN = "run_date"
LEFT_AS_IT_WAS = "nothing was loaded and the partition was left as it was (rerun the date)"
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
    """Extra load-job settings: day partitions on ``run_date``, clustered by status.

    ``ALLOW_FIELD_ADDITION`` lets a load append the NULLABLE columns added to
    :data:`pipeline.table.SCHEMA` since a table was created.
    """
    return {
        "timePartitioning": {"type": "DAY", "field": PARTITION_COLUMN},
        "clustering": {"fields": ["status", "dataset"]},
        "schemaUpdateOptions": ["ALLOW_FIELD_ADDITION"],
    }


def check_rows(ids: list[str], expected: object, table: str) -> bool:
    """Refuse a load with no rows, or whose ids are not one per dataset found.

    Args:
        ids: The ``dataset`` of every row about to be loaded.
        expected: What discovery found (:class:`pipeline.discover.listing.Expected`).
        table: The partition, for the message.

    Returns:
        ``True`` (the rows may be loaded).

    Raises:
        RuntimeError: one line saying why nothing was loaded.
    """
    if not ids:
        raise RuntimeError(f"no rows to load into {table}: {LEFT_AS_IT_WAS}")
    check_ids(expected.datasets, ids, LEFT_AS_IT_WAS)
    return True


def _load_to_bigquery(table: str) -> beam.PTransform:
    """The real load: ``WriteToBigQuery`` with file loads into the partition, truncating it."""
    from apache_beam.io.gcp.bigquery import BigQueryDisposition, WriteToBigQuery

    return WriteToBigQuery(
        table=table,
        schema=bigquery_schema(),
        method=WriteToBigQuery.Method.FILE_LOADS,
        create_disposition=BigQueryDisposition.CREATE_IF_NEEDED,
        write_disposition=BigQueryDisposition.WRITE_TRUNCATE,
        additional_bq_parameters=load_parameters(),
    )


def _pass(row: dict, checked: bool) -> dict:
    return row


class WriteBigQuery(beam.PTransform):
    """Replaces this run's ``run_date`` partition of a BigQuery table with the rows.

    Input: a dict with ``tables`` (Arrow tables of output rows) and ``expected`` (what
    discovery found), as :class:`pipeline.graph.fit_datasets.FitDatasets` returns it.
    Null-key counts are not written (they are in the ``null_key_rows`` metric). The rows
    reach the load only after :func:`check_rows` passed on all of them.

    Args:
        config: The job's configuration; ``config.output`` is ``bigquery:PROJECT:DATASET.TABLE``.
        load: Makes the load step from the partition (``PROJECT:DATASET.TABLE$YYYYMMDD``);
            default: Beam's ``WriteToBigQuery`` (tests pass a stand-in).
    """

    def __init__(self, config: JobConfig, load: Callable[[str], beam.PTransform] | None = None) -> None:
        super().__init__()
        self._config = config
        self._load = load or _load_to_bigquery

    def expand(self, results: dict[str, beam.PCollection]) -> beam.PCollection:
        """Convert the rows, check their ids, and load them into the partition with ``WRITE_TRUNCATE``."""
        table = parse_bigquery_output(self._config.output).partition(self._config.run_date)
        rows = (
            results["tables"]
            | "Rows" >> beam.FlatMap(lambda table: table.to_pylist())
            | "ToBigQueryRows" >> beam.Map(to_bigquery_row, self._config.run_date)
        )
        expected = results["expected"] | "SumExpected" >> beam.CombineGlobally(merge_expected)
        checked = (
            rows
            | "Ids" >> beam.Map(lambda row: row["dataset"])
            | "AllIds" >> beam.combiners.ToList()
            | "CheckIds" >> beam.Map(check_rows, beam.pvalue.AsSingleton(expected), table)
        )
        return (
            rows
            | "AfterCheck" >> beam.Map(_pass, beam.pvalue.AsSingleton(checked))
            | "LoadPartition" >> self._load(table)
        )
