"""The output table's one schema, and its rows built from fit results.

Everything that writes or reads a row uses :data:`SCHEMA` (Parquet directly; BigQuery
derives its schema from it in :mod:`pipeline.table.bigquery`).
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from pipeline.discover.layout import DatasetRef
from pipeline.fit.result import FitResult, failed

__all__ = [
    "COLUMNS",
    "SCHEMA",
    "failure_row",
    "result_row",
    "results_table",
]

SCHEMA = pa.schema(
    [
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("w", pa.float64()),
        pa.field("b", pa.float64()),
        pa.field("final_loss", pa.float64()),
        pa.field("r2", pa.float64()),
        pa.field("steps", pa.int64(), nullable=False),
        pa.field("converged", pa.bool_(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("n_rows", pa.int64(), nullable=False),
        pa.field("n_dropped", pa.int64(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("fitted_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("reused_from", pa.string()),
        # appended with robust and weighted fits (nullable: partitions written before lack them)
        pa.field("w_stderr", pa.float64()),
        pa.field("b_stderr", pa.float64()),
        pa.field("scale", pa.float64()),
        pa.field("n_outliers", pa.int64()),
    ]
)
COLUMNS = tuple(SCHEMA.names)
# The result's own numbers: the columns a FitResult fills, in the schema's order.
_RESULT_FIELDS = (
    "w", "b", "final_loss", "r2", "steps", "converged", "status", "error", "n_rows", "n_dropped",
    "w_stderr", "b_stderr", "scale", "n_outliers",
)  # fmt: skip


def result_row(ref: DatasetRef, result: FitResult, run_id: str, fitted_at: dt.datetime) -> dict:
    """Return the output row of one dataset's result, keyed by :data:`COLUMNS`."""
    row = {"dataset": ref.dataset, "source": ref.source, "run_id": run_id, "fitted_at": fitted_at, "reused_from": None}
    row.update({name: getattr(result, name) for name in _RESULT_FIELDS})
    return {name: row[name] for name in COLUMNS}


def failure_row(ref: DatasetRef, error: str, run_id: str, fitted_at: dt.datetime) -> dict:
    """Return a ``failed`` row for a dataset that could not be read or fitted."""
    return result_row(ref, failed(error), run_id, fitted_at)


def results_table(
    datasets: list[str], sources: list[str], results: list[FitResult], run_id: str, fitted_at: dt.datetime
) -> pa.Table:
    """Return the output rows of many datasets as one Arrow table in :data:`SCHEMA`."""
    columns = {"dataset": list(datasets)}
    columns.update({name: [getattr(result, name) for result in results] for name in _RESULT_FIELDS})
    columns.update(
        {
            "source": list(sources),
            "run_id": [run_id] * len(results),
            "fitted_at": [fitted_at] * len(results),
            "reused_from": [None] * len(results),
        }
    )
    return pa.Table.from_pydict(columns, schema=SCHEMA)
