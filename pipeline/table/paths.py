"""Where a table's partitions live: ``TABLE_DIR/run_date=YYYY-MM-DD/`` and the staging folder.

The table is Hive-partitioned Parquet: ``TABLE_DIR/run_date=YYYY-MM-DD/*.parquet`` plus
``_manifest.json``. Paths are joined with Beam's ``FileSystems``, so ``gs://`` works.
"""

from __future__ import annotations

from apache_beam.io.filesystems import FileSystems

from pipeline.config.settings import JobConfig

__all__ = ["MANIFEST", "partition_dir", "staging_dir", "staging_root"]

MANIFEST = "_manifest.json"


def partition_dir(config: JobConfig) -> str:
    """``TABLE_DIR/run_date=YYYY-MM-DD``: where this run's results become visible."""
    return FileSystems.join(config.output, f"run_date={config.run_date}")


def staging_root(config: JobConfig) -> str:
    """``TABLE_DIR/_staging``: readers of the table ignore ``_``-prefixed folders."""
    return FileSystems.join(config.output, "_staging")


def staging_dir(config: JobConfig) -> str:
    """Where this run writes its partition before the commit swaps it into place."""
    return FileSystems.join(staging_root(config), config.run_id, f"run_date={config.run_date}")
