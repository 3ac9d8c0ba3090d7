"""Side-by-side benchmark of tapefit against DuckDB, pyarrow, numpy and the eager GradientTape loop.

Run ``python -m benchmarks.run --help`` (or ``make bench`` / ``make bench-quick``). Not shipped
by ``setup.py``: this package is a development tool, never installed on workers.
"""
