"""The row form's throughput: one dataset of N rows, a fixed number of compiled steps, on one core.

Usage: ``python -m benchmarks.rowform [--rows 10000000] [--steps 100] [--json FILE]``

Pins itself to one core (CPU affinity), builds tapefit's compiled row-form
loops (squared loss and Huber, XLA), runs each once untimed (tracing and compiling for
this shape) and once timed, and reports row-steps per second: rows × steps ÷ seconds of
the compiled call alone (reading, standardizing and the float64 check are not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

__all__ = ["main", "measure"]


def _one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def measure(rows: int, steps: int) -> dict:
    """Time both row-form losses on one dataset of ``rows`` rows for ``steps`` steps.

    Returns:
        ``{loss: {"compile_s", "seconds", "steps", "row_steps_per_s"}}``.
    """
    from pipeline.fit.descent import Descent
    from pipeline.fit.frame import Frame

    rng = np.random.default_rng(0)
    u = rng.normal(0, 1, rows)
    v = 0.8 * u + rng.normal(0, 0.6, rows)
    v[: rows // 50] += 20.0  # 2 % gross outliers, for Huber
    v = (v - v.mean()) / v.std()
    weight, starts = np.ones(rows), np.zeros(1, np.int64)
    descent = Descent("float64", 0.1, 0.0, steps)
    frame = Frame.standardized(1, True, np.array([float(rows)]))
    found = {}
    for loss, begin in (("squared", (np.zeros(1), np.zeros(1))), ("huber", (np.zeros(1), np.zeros(1), np.ones(1)))):
        run = descent.squared_rows if loss == "squared" else descent.huber
        started = time.perf_counter()
        run(u, v, weight, starts, begin, frame)
        first = time.perf_counter() - started
        started = time.perf_counter()
        outcome = run(u, v, weight, starts, begin, frame)
        seconds = time.perf_counter() - started
        done = int(outcome.steps[0])
        found[loss] = {
            "compile_s": max(first - seconds, 0.0),
            "seconds": seconds,
            "steps": done,
            "row_steps_per_s": rows * done / seconds,
        }
    return found


def main(argv: list[str] | None = None) -> int:
    """Measure and print one JSON line (also written to ``--json``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rowform", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    _one_core()
    result = {"rows": args.rows, "steps": args.steps, "losses": measure(args.rows, args.steps)}
    text = json.dumps(result)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
