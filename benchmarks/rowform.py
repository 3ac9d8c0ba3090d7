"""The row form's throughput: one dataset of N rows, a fixed number of compiled steps, on one core.

Usage: ``python -m benchmarks.rowform [--rows 10000000] [--steps 100] [--json FILE]``

Pins itself to one core (CPU affinity), builds tapefit's compiled row-form
loops (squared loss and Huber, XLA) in float64 (the default ``--dtype``) and float32,
runs each once untimed (tracing and compiling for this shape) and once timed, and
reports row-steps per second: rows × steps ÷ seconds of the call (the rows' block
layout included; reading and standardizing not). Beside them, in the same process, the
floor: the simplest GradientTape loop there is on the same rows (one flat vector, mean
squared error, XLA, its loss never evaluated, only its gradient), in both dtypes.
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


def _timed(call: object, rows: int) -> dict:
    """Run ``call`` (returning its step count) untimed, then timed: the probe's entry."""
    started = time.perf_counter()
    call()
    first = time.perf_counter() - started
    started = time.perf_counter()
    done = call()
    seconds = time.perf_counter() - started
    return {
        "compile_s": max(first - seconds, 0.0),
        "seconds": seconds,
        "steps": done,
        "row_steps_per_s": rows * done / seconds,
    }


def floor(u: np.ndarray, v: np.ndarray, steps: int, dtype: str) -> dict:
    """The simplest compiled GradientTape loop on these rows: the most a row form could reach here."""
    from pipeline.fit.descent import tf

    x, y = tf.constant(u, dtype), tf.constant(v, dtype)

    @tf.function(jit_compile=True, autograph=False)
    def loop(x, y):  # noqa: ANN001, ANN202
        def body(i, w, b):  # noqa: ANN001, ANN202
            with tf.GradientTape() as tape:
                tape.watch([w, b])
                loss = tf.reduce_mean(tf.square(w * x + b - y))
            dw, db = tape.gradient(loss, [w, b])
            return i + 1, w - 0.1 * dw, b - 0.1 * db

        zero = tf.zeros([], x.dtype)
        return tf.while_loop(lambda i, w, b: i < steps, body, (tf.constant(0), zero, zero))  # noqa: ARG005

    def call() -> int:
        done, w, b = loop(x, y)
        assert np.isfinite(float(w) + float(b))  # the line is an output: XLA cannot drop the loop's work
        return int(done)

    return _timed(call, len(u))


def measure(rows: int, steps: int) -> dict:
    """Time both row-form losses, in both dtypes, and the floor, on one dataset of ``rows`` rows.

    Returns:
        ``{"losses": {name: entry}, "floor": {dtype: entry}, "converged": {name: entry}}``,
        each entry ``{"compile_s", "seconds", "steps", "row_steps_per_s"}``; names are
        ``squared`` and ``huber`` (float64, the default) and ``squared float32``, ``huber
        float32``; ``converged`` is Huber at its default step, run to convergence from σ = 1.
    """
    from pipeline.config.settings import LEARNING_RATES
    from pipeline.fit.descent import Descent
    from pipeline.fit.frame import Frame

    rng = np.random.default_rng(0)
    u = rng.normal(0, 1, rows)
    v = 0.8 * u + rng.normal(0, 0.6, rows)
    v[: rows // 50] += 20.0  # 2 % gross outliers, for Huber
    v = (v - v.mean()) / v.std()
    weight, starts = None, np.zeros(1, np.int64)  # unweighted, as a run without --weight_column
    frame = Frame.standardized(1, True, np.array([float(rows)]))
    found, converged = {}, {}
    huber_start = (np.zeros(1), np.zeros(1), np.ones(1))
    for dtype in ("float64", "float32"):
        suffix = "" if dtype == "float64" else f" {dtype}"
        # Huber's Newton step converges in a few steps: its cost a step is timed at a step
        # too small to converge in ``steps`` (every step costs the same whatever its size)
        squared, huber = Descent(dtype, 0.1, 0.0, steps), Descent(dtype, 0.005, 0.0, steps)
        for name, run, begin in (
            ("squared", squared.squared_rows, (np.zeros(1),) * 2),
            ("huber", huber.huber, huber_start),
        ):
            call = lambda run=run, begin=begin: int(run(u, v, weight, starts, begin, frame).steps[0])  # noqa: E731
            found[name + suffix] = _timed(call, rows)
        default = Descent(dtype, LEARNING_RATES["huber"], 0.0, 1000)
        call = lambda run=default.huber: int(run(u, v, weight, starts, huber_start, frame).steps[0])  # noqa: E731
        converged["huber" + suffix] = _timed(call, rows)
    floors = {dtype: floor(u, v, steps, dtype) for dtype in ("float64", "float32")}
    return {"losses": found, "floor": floors, "converged": converged}


def main(argv: list[str] | None = None) -> int:
    """Measure and print one JSON line (also written to ``--json``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rowform", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    _one_core()
    result = {"rows": args.rows, "steps": args.steps, **measure(args.rows, args.steps)}
    text = json.dumps(result)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
