"""Benchmark tapefit side by side with DuckDB, a pyarrow read floor, numpy and the eager loop.

Usage: ``python -m benchmarks.run [--quick] [--workloads S,M,L,K,S10,K10,ONE] [--contenders ...] [--out FILE]``

Generates the workloads once into the cache folder (reused by later runs), then runs every
contender on every workload in this one invocation, one after the other on the same files,
each in a fresh interpreter under :mod:`benchmarks.measure`. Prints a table — wall seconds,
ratio to DuckDB, peak RSS of the largest process, the largest relative difference of w and b
from DuckDB's — and the issue's targets as met/missed, and writes it all as JSON with a
description of the machine. Targets are reported, never asserted: the exit status is 1 only
when a contender failed to run or to produce results.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.contenders import ROOT, Contender, Outcome, default_contenders, run_contender
from benchmarks.machine import describe
from benchmarks.report import evaluate_targets, format_table, format_targets, result_row
from benchmarks.workloads import DEFAULT_WORKLOADS, FULL, QUICK, Workload, ensure

__all__ = ["DEFAULT_CACHE", "main", "parse_args"]

DEFAULT_CACHE = ROOT / ".bench-cache"


def _variant(text: str) -> tuple[str, tuple[str, ...]]:
    name, sep, args = text.partition("=")
    if not sep or not name.startswith("tapefit"):
        raise argparse.ArgumentTypeError(f"expected tapefit-NAME='ARGS', got {text!r}")
    return name, tuple(shlex.split(args))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see ``--help``).

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The parsed options, with ``workloads`` and ``contenders`` resolved to objects.
    """
    names = [c.name for c in default_contenders()]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="scaled-down workloads (about a minute in all)")
    parser.add_argument(
        "--workloads",
        default=",".join(DEFAULT_WORKLOADS),
        help=f"comma-separated subset of {','.join(DEFAULT_WORKLOADS)} (default: all)",
    )
    parser.add_argument(
        "--contenders",
        default=None,
        help=f"comma-separated subset of {','.join(names)} (default: all; --quick leaves out the rows-form variant)",
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="workload cache (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="results JSON (default: CACHE/results.json)")
    parser.add_argument(
        "--tapefit_args", default="", help='extra arguments for all tapefit runs: --tapefit_args="--dtype float32"'
    )
    parser.add_argument(
        "--variant",
        action="append",
        type=_variant,
        default=[],
        metavar="tapefit-NAME='ARGS'",
        help="add a tapefit variant with these arguments (repeatable)",
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds before one contender run is killed")
    parser.add_argument(
        "--rowform_rows",
        type=int,
        default=None,
        help="rows of the row-form throughput probe (default: 10,000,000; 1,000,000 with --quick; 0 skips it)",
    )
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    wanted = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    if bad := [w for w in wanted if w not in scale]:
        parser.error(f"unknown workload(s) {','.join(bad)}; choose from {','.join(scale)}")
    args.workloads = [scale[w] for w in wanted]
    everyone = {c.name: c for c in default_contenders(args.variant)}
    if args.contenders is None:
        args.contenders = ",".join(n for n in names if not (args.quick and n.endswith("-rows")))
    chosen = [c.strip() for c in args.contenders.split(",") if c.strip()]
    chosen += [name for name, _ in args.variant if name not in chosen]
    if bad := [c for c in chosen if c not in everyone]:
        parser.error(f"unknown contender(s) {','.join(bad)}; choose from {','.join(everyone)}")
    args.contenders = [c for c in everyone.values() if c.name in chosen]  # DuckDB first, fixed order
    args.out = args.out or args.cache / "results.json"
    if args.rowform_rows is None:
        args.rowform_rows = 1_000_000 if args.quick else 10_000_000
    return args


def _rowform(rows: int, out: Path) -> dict | None:
    """Run the row-form throughput probe (:mod:`benchmarks.rowform`) in its own process."""
    if not rows:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "benchmarks.rowform", "--rows", str(rows), "--json", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(out.read_text())


def format_rowform(found: dict | None) -> str:
    """Lines for the row-form probe's result."""
    if not found:
        return "row form: not measured"
    if "error" in found:
        return f"row form: failed: {found['error'][0]}"
    lines = [f"row form, one dataset of {found['rows']:,} rows, {found['steps']} steps, one core (XLA):"]
    floors = found.get("floor") or {}
    for name, m in [*found["losses"].items(), *((f"floor {d}", f) for d, f in floors.items())]:
        base = floors.get("float32" if "float32" in name else "float64")
        unrated = name.startswith("floor") or not base  # a floor is not rated against itself
        share = "" if unrated else f"; {m['row_steps_per_s'] / base['row_steps_per_s']:.0%} of its dtype's floor"
        lines.append(
            f"  {name:<16} {m['row_steps_per_s'] / 1e6:8.0f}M row-steps/s  "
            f"({m['seconds'] / m['steps'] * 1e3:.1f} ms a step; compile {m['compile_s']:.1f} s{share})"
        )
    for name, m in (found.get("converged") or {}).items():
        lines.append(f"  {name:<16} to convergence at the default step: {m['steps']} steps, {m['seconds']:.2f} s")
    return "\n".join(lines)


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _warm_page_cache(data: Path) -> None:
    """Read every input file once, untimed, so no contender pays for a cold disk cache."""
    for path in sorted(data.rglob("*.parquet")):
        with path.open("rb") as handle:
            while handle.read(1 << 24):
                pass


def _run_workload(workload: Workload, data: Path, args: argparse.Namespace) -> list[dict]:
    outcomes: dict[str, Outcome] = {}
    contenders: list[Contender] = args.contenders
    for contender in contenders:
        _warm_page_cache(data)
        out = args.cache / "runs" / workload.key / contender.name
        outcome = run_contender(contender, workload, data, out, shlex.split(args.tapefit_args), args.timeout)
        outcomes[contender.name] = outcome
        wall = outcome.measure.get("wall_s")
        timing = f"{wall:8.2f} s" if wall is not None else ""
        _progress(f"  {workload.name} {contender.name:<16} {outcome.status:<8}{timing}  {outcome.error}".rstrip())
    return [result_row(workload, c, outcomes[c.name], outcomes) for c in contenders]


def _describe(workload: Workload, data: Path) -> dict:
    extra = {"key": workload.key, "total_rows": workload.total_rows, "group_by": workload.group_by, "path": str(data)}
    return {**dataclasses.asdict(workload), **extra}


def main(argv: list[str] | None = None) -> int:
    """Generate the workloads, run every contender on each, print and write the results.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        0, or 1 when a contender failed or timed out (missed targets never change it).
    """
    args = parse_args(argv)
    started = time.perf_counter()
    machine = describe()
    args.cache.mkdir(parents=True, exist_ok=True)
    inputs = {}
    for workload in args.workloads:
        t0 = time.perf_counter()
        inputs[workload.name] = ensure(workload, args.cache)
        _progress(f"workload {workload.key}: {workload.total_rows:,} rows, ready in {time.perf_counter() - t0:.1f} s")
    rows = []
    for workload in args.workloads:
        rows += _run_workload(workload, inputs[workload.name], args)
    _progress("row form throughput probe ...")
    rowform = _rowform(args.rowform_rows, args.cache / "runs" / "rowform.json")
    targets = evaluate_targets(rows, rowform)
    machine["load_average_at_end"] = os.getloadavg()
    mode = "quick (scaled down: indicative only)" if args.quick else "full"
    print(f"\ntapefit benchmark, {mode}; reference: DuckDB; RSS: largest single process\n")
    print(format_table(rows))
    print("\n" + format_rowform(rowform))
    print("\ntargets (reported, not asserted):")
    print(format_targets(targets))
    total = time.perf_counter() - started
    cores, memory = machine["cpus_usable"], machine["memory_gib"]
    print(f"\n{machine['cpu_model']}, {cores} usable cores, {memory} GiB; total {total:.1f} s")
    report = {
        "mode": "quick" if args.quick else "full",
        "machine": machine,
        "options": {"tapefit_args": args.tapefit_args, "timeout": args.timeout, "cache": str(args.cache)},
        "workloads": {w.name: _describe(w, inputs[w.name]) for w in args.workloads},
        "contenders": [{"name": c.name, "kind": c.kind, "extra_args": list(c.extra_args)} for c in args.contenders],
        "results": rows,
        "rowform": rowform,
        "targets": targets,
        "total_seconds": total,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"results written to {args.out}")
    return 1 if any(r["status"] in ("failed", "timeout") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
