"""The textbook eager GradientTape loop, one dataset at a time, timed per dataset.

Usage: ``python -m benchmarks.eager --input DIR --layout L --datasets ID[,ID...] --out FILE``

This is the loop of the classic TensorFlow tutorial, unchanged but for float64: two
``tf.Variable`` s, and a Python ``for`` of 200 eager steps, each a ``tf.GradientTape`` around
the mean squared error, ``tape.gradient`` and two ``assign_sub``. It runs on standardized data
(learning rate 0.1, so it converges whatever the scale; 0.8²⁰⁰ ≈ 4e-20) and maps the result
back to data units. Only the loop is timed, per dataset: TensorFlow's import and reading the
data are not. Its w, b are informational; it is here for its speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.results import Fit, write_fits
from benchmarks.workloads import KEY_COLUMN, dataset_id, parquet_files

__all__ = ["LEARNING_RATE", "STEPS", "load", "main", "textbook_fit"]

STEPS = 200
LEARNING_RATE = 0.1


def load(root: Path, layout: str, ids: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read x, y of the datasets ``ids`` (any layout).

    Args:
        root: Input directory.
        layout: ``file``, ``directory`` or ``column``.
        ids: Dataset ids as tapefit names them.

    Returns:
        id → (x, y) as float64 arrays.
    """
    if layout == "column":
        table = pq.read_table(root, columns=[KEY_COLUMN, "x", "y"], filters=[(KEY_COLUMN, "in", ids)])
        found = {}
        for ident in ids:
            part = table.filter(pc.equal(table[KEY_COLUMN], ident))
            found[ident] = (part["x"].to_numpy(), part["y"].to_numpy())
        return found
    base = str(root.resolve())
    paths: dict[str, list[Path]] = {}
    for path in parquet_files(root):
        paths.setdefault(dataset_id(str(path.resolve()), base, layout), []).append(path)
    found = {}
    for ident in ids:
        tables = [pq.read_table(p, columns=["x", "y"]) for p in paths[ident]]
        found[ident] = (
            np.concatenate([t["x"].to_numpy() for t in tables]),
            np.concatenate([t["y"].to_numpy() for t in tables]),
        )
    return found


def textbook_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Fit y = w·x + b by the tutorial's eager loop on standardized data.

    Args:
        x: Float64 x values.
        y: Float64 y values.

    Returns:
        (w, b) in data units.
    """
    import tensorflow as tf

    mx, sx, my, sy = x.mean(), x.std(), y.mean(), y.std() or 1.0
    u = tf.constant((x - mx) / sx)
    v = tf.constant((y - my) / sy)
    w = tf.Variable(0.0, dtype=tf.float64)
    b = tf.Variable(0.0, dtype=tf.float64)
    for _ in range(STEPS):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(w * u + b - v))
        dw, db = tape.gradient(loss, [w, b])
        w.assign_sub(LEARNING_RATE * dw)
        b.assign_sub(LEARNING_RATE * db)
    slope = float(w.numpy()) * sy / sx
    return slope, my + sy * float(b.numpy()) - slope * mx


def main(argv: list[str] | None = None) -> int:
    """Command line: fit the named datasets eagerly and write per-dataset results with seconds.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        Exit status 0.
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.eager", description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, required=True, help="input directory")
    parser.add_argument("--layout", choices=("file", "directory", "column"), required=True)
    parser.add_argument("--datasets", required=True, help="comma-separated dataset ids to fit")
    parser.add_argument("--out", type=Path, required=True, help="results Parquet file to write")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import tensorflow as tf  # noqa: F401  (imported before any timing starts)

    data = load(args.input, args.layout, args.datasets.split(","))
    textbook_fit(np.arange(3.0), np.arange(3.0))  # first-call kernel setup, not part of a dataset
    fits = {}
    for ident, (x, y) in data.items():
        start = time.perf_counter()
        w, b = textbook_fit(x, y)
        fits[ident] = Fit(w, b, x.size, "ok", time.perf_counter() - start)
    write_fits(args.out, fits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
