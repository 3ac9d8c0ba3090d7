"""Stage 2, read them: x, y (and a key) from Parquet files with pyarrow, through Beam's FileSystems."""

from pipeline.read.parquet import DatasetError, KeyedChunk, iter_xy, read_keyed, read_xy

__all__ = ["DatasetError", "KeyedChunk", "iter_xy", "read_keyed", "read_xy"]
