"""``build(p, config)``: the whole tapefit pipeline graph, wired but not run."""

from __future__ import annotations

import apache_beam as beam

from pipeline.bigquery import WriteBigQuery, is_bigquery
from pipeline.datasets import DiscoverDatasets
from pipeline.options import JobConfig
from pipeline.transforms import FitDatasets
from pipeline.write import WriteTable

__all__ = ["build"]


def build(p: beam.Pipeline, config: JobConfig) -> beam.PCollection:
    """Add discovery, reading, fitting and the table write (Parquet or BigQuery) to ``p``.

    Args:
        p: The pipeline to extend.
        config: The validated job configuration.

    Returns:
        For a Parquet table, a PCollection holding the committed partition's manifest
        (one element); for BigQuery, what ``WriteToBigQuery`` returns.
    """
    results = p | "DiscoverDatasets" >> DiscoverDatasets(config) | "FitDatasets" >> FitDatasets(config)
    if is_bigquery(config.output):
        return results | "WriteBigQuery" >> WriteBigQuery(config)
    return results | "WriteTable" >> WriteTable(config)
