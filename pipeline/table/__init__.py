"""Stage 5, the output table: one schema, a staged write and an atomic commit, BigQuery, history."""

from pipeline.table.paths import MANIFEST, partition_dir, staging_dir, staging_root
from pipeline.table.schema import COLUMNS, SCHEMA, failure_row, result_row, results_table

__all__ = [
    "COLUMNS",
    "MANIFEST",
    "SCHEMA",
    "failure_row",
    "partition_dir",
    "result_row",
    "results_table",
    "staging_dir",
    "staging_root",
]
