"""``build(p, config)``: the whole tapefit pipeline graph, wired but not run.

Discover → read and reduce → fit → write: the stages of :mod:`pipeline`, in the order
the data travels. The output table's history is handed to discovery here, so that
``--incremental`` skips unchanged datasets before anything is read.
"""

from __future__ import annotations

import apache_beam as beam

from pipeline.config.output import is_bigquery
from pipeline.config.settings import JobConfig
from pipeline.discover.listing import DiscoverDatasets
from pipeline.graph.beam_fixes import guard_data_stream_flush
from pipeline.graph.fit_datasets import FitDatasets
from pipeline.table.bigquery import WriteBigQuery
from pipeline.table.history import TableHistory
from pipeline.table.write import WriteTable

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
    guard_data_stream_flush()  # Beam 2.77 drops bundle input on its gRPC modes otherwise (README)
    bigquery = is_bigquery(config.output)
    history = None if bigquery else TableHistory(config)  # BigQuery tables keep no fingerprints
    results = p | "DiscoverDatasets" >> DiscoverDatasets(config, history) | "FitDatasets" >> FitDatasets(config)
    if bigquery:
        return results | "WriteBigQuery" >> WriteBigQuery(config)
    return results | "WriteTable" >> WriteTable(config)
