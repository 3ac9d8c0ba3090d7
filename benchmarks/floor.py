"""The import floor of a one-dataset run: ``import apache_beam, tensorflow`` (Keras hidden, as tapefit does).

Usage: ``python -m benchmarks.floor --input DIR --out FILE``. Imports Beam and TensorFlow
the way a tapefit run does and nothing else, then writes one
:data:`~benchmarks.results.ALL_ROWS` row counting the input's rows from the Parquet
footers (pyarrow is already loaded by Beam), so the harness can check it like the other
read-only contenders. A tapefit run can never be faster than this; the issue's target
is a one-dataset run within 1.3x of it, measured side by side.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _import_floor() -> None:
    """Import Beam, then TensorFlow with Keras hidden (what ``pipeline.fit.descent`` does)."""
    import apache_beam  # noqa: F401

    hide = "keras" not in sys.modules
    if hide:
        sys.modules["keras"] = None  # type: ignore[assignment]
    try:
        import tensorflow  # noqa: F401
    finally:
        if hide and sys.modules.get("keras", 0) is None:
            del sys.modules["keras"]


def main(argv: list[str] | None = None) -> int:
    """Command line: import the floor, count the input's rows, write them.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        Exit status 0.
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, required=True, help="input directory")
    parser.add_argument("--out", type=Path, required=True, help="results Parquet file to write")
    args = parser.parse_args(argv)
    _import_floor()
    import pyarrow.parquet as pq

    from benchmarks.results import ALL_ROWS, Fit, write_fits
    from benchmarks.workloads import parquet_files

    rows = sum(pq.read_metadata(path).num_rows for path in parquet_files(args.input))
    write_fits(args.out, {ALL_ROWS: Fit(None, None, rows)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
