"""Turning outcomes into rows, a fixed-width table and the targets (evaluated, never asserted)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from benchmarks.contenders import FLOOR, REFERENCE, Contender, Outcome
from benchmarks.results import ALL_ROWS, Fit
from benchmarks.workloads import Workload

__all__ = [
    "RSS_LIMIT_MB",
    "TINY",
    "compare",
    "evaluate_targets",
    "format_table",
    "format_targets",
    "rel_diff",
    "result_row",
]

TINY = 1e-300
RSS_LIMIT_MB = 1.5e9 / 2**20  # 1.5 GB per process, in MiB (what the table shows)
SPEED_TARGETS = {"S": 2.0, "M": 3.0, "L": 3.0, "K": 3.0, "S10": 1.5, "K10": 2.0}  # tapefit wall / DuckDB wall
FLOOR_TARGET = 1.3  # one-dataset run (ONE) / the import floor measured in the same run
FLOOR_CONTENDERS = ("tapefit-inproc",)  # the default runner mode (DirectRunner in_memory)
HUBER_VS_DEFAULT = 4.0  # M with --loss huber / M with the default loss
ROW_STEPS_PER_S = 300e6  # row form, one 10M-row dataset, one core
RSS_WORKLOADS = ("S", "M", "L", "K", "S10", "K10", "ONE")  # 1.5 GB a process, everywhere
ACCURACY_WORKLOADS, ACCURACY = ("S", "M"), 1e-9
EAGER_SPEEDUP = 1000.0


def rel_diff(value: float | None, ref: float | None) -> float:
    """``|value − ref| / max(|ref|, TINY)``; ``inf`` when either is missing or not finite."""
    if value is None or ref is None or not (math.isfinite(value) and math.isfinite(ref)):
        return math.inf
    return abs(value - ref) / max(abs(ref), TINY)


def compare(fits: dict[str, Fit], ref: dict[str, Fit] | None, expected: Sequence[str], gives_fits: bool) -> dict:
    """Check a contender's results for completeness and against the reference.

    Args:
        fits: The contender's id → Fit.
        ref: DuckDB's id → Fit, or ``None`` when DuckDB did not run.
        expected: Every id the workload has.
        gives_fits: Whether w and b are to be compared (not for the read-only floor).

    Returns:
        ``n_reported``, ``missing``, ``extra``, ``not_ok``, ``n_rows_mismatch`` (vs. DuckDB),
        ``max_rel_diff_w`` / ``_b`` over datasets both report (``None`` if not compared).
    """
    if set(fits) == {ALL_ROWS}:  # a row count over everything: compare totals only
        total = sum(f.n_rows or 0 for f in (ref or {}).values())
        mismatch = int(ref is not None and fits[ALL_ROWS].n_rows != total)
        return {
            "n_reported": None,
            "missing": 0,
            "extra": 0,
            "not_ok": 0,
            "n_rows_mismatch": mismatch,
            "max_rel_diff_w": None,
            "max_rel_diff_b": None,
        }
    wanted = set(expected)
    common = [i for i in fits if ref is not None and i in ref]
    diffs_w = [rel_diff(fits[i].w, ref[i].w) for i in common] if gives_fits else []
    diffs_b = [rel_diff(fits[i].b, ref[i].b) for i in common] if gives_fits else []
    return {
        "n_reported": len(fits),
        "missing": len(wanted - set(fits)),
        "extra": len(set(fits) - wanted),
        "not_ok": sum(f.status != "ok" for f in fits.values()),
        "n_rows_mismatch": sum(fits[i].n_rows != ref[i].n_rows for i in common),
        "max_rel_diff_w": max(diffs_w) if diffs_w else None,
        "max_rel_diff_b": max(diffs_b) if diffs_b else None,
    }


def result_row(workload: Workload, contender: Contender, outcome: Outcome, outcomes: dict[str, Outcome]) -> dict:
    """One row of the results: measurements, ratio to DuckDB, checks and a note.

    Args:
        workload: The workload.
        contender: The contender.
        outcome: Its outcome on the workload.
        outcomes: Every contender's outcome on the same workload, by name (for DuckDB and tapefit).

    Returns:
        A JSON-ready dict.
    """
    m = outcome.measure
    row = {"workload": workload.name, "contender": contender.name, "kind": contender.kind, "status": outcome.status}
    row.update({k: m.get(k) for k in ("wall_s", "cpu_s", "max_rss_mb", "sampled_max_rss_mb", "sampled_max_procs")})
    row.update({"error": outcome.error, "command": outcome.command})
    ref = outcomes.get(REFERENCE)
    ref_ok = ref is not None and ref.status == "ok"
    notes = [outcome.error] if outcome.error else []
    if outcome.status == "ok":
        expected = workload.ids()[: workload.eager_sample] if contender.kind == "eager" else workload.ids()
        checks = compare(outcome.fits, ref.fits if ref_ok else None, expected, contender.gives_fits)
        row.update(checks)
        problems = [f"{k.replace('_', ' ')} {v}" for k, v in checks.items() if k in _COUNTS and v]
        notes += problems
        if contender.kind == "eager":
            row.update(_eager(outcome, outcomes))
            notes.append(
                f"sample of {len(outcome.fits)}, per dataset {row['per_dataset_s'] * 1e3:.0f} ms; "
                + ", ".join(f"{r:.3g}x {n}" for n, r in row["speedup_per_dataset"].items())
            )
            notes.append("w,b informational")
        else:
            row["ratio_vs_duckdb"] = m["wall_s"] / ref.measure["wall_s"] if ref_ok else None
            row["per_dataset_s"] = m["wall_s"] / workload.n_datasets
            floor = outcomes.get(FLOOR)
            if contender.kind == "tapefit" and floor is not None and floor.status == "ok":
                row["ratio_vs_floor"] = m["wall_s"] / floor.measure["wall_s"]
                notes.append(f"{row['ratio_vs_floor']:.2f}x the import floor")
        if not contender.gives_fits:
            kind = "import only" if contender.name == FLOOR else "read only"
            notes.append("Huber objective: w, b not compared" if "huber" in contender.extra_args else kind)
        squared = contender.name.removesuffix("-huber")  # the same runner with the default loss
        default = outcomes.get(squared)
        if squared != contender.name and default is not None and default.status == "ok":
            row["ratio_vs_default_loss"] = m["wall_s"] / default.measure["wall_s"]
            notes.append(f"{row['ratio_vs_default_loss']:.2f}x {squared} (squared loss)")
    row["notes"] = "; ".join(notes)
    return row


_COUNTS = ("missing", "extra", "not_ok", "n_rows_mismatch")


def _eager(outcome: Outcome, outcomes: dict[str, Outcome]) -> dict:
    """Eager per-dataset seconds, and how many times slower than each tapefit variant per dataset."""
    seconds = {k: f.seconds for k, f in outcome.fits.items()}
    per_dataset = sum(seconds.values()) / len(seconds)
    speedups = {}
    for name, other in outcomes.items():
        if name.startswith("tapefit") and other.status == "ok":
            speedups[name] = per_dataset / (other.measure["wall_s"] / max(len(other.fits), 1))
    return {
        "per_dataset_s": per_dataset,
        "seconds_by_dataset": seconds,
        "speedup_per_dataset": speedups,
        "ratio_vs_duckdb": None,
    }


def _fmt(value: float | None, spec: str) -> str:
    """``value`` formatted by ``spec`` (e.g. ``9.2f``), or a dash right-aligned to the same width."""
    width = int(spec.split(".")[0] or 0)
    return "—".rjust(width) if value is None else format(value, spec)


_COLUMNS = (  # key, title, format
    ("wall_s", "wall s", "9.2f"),
    ("cpu_s", "cpu s", "8.1f"),
    ("ratio_vs_duckdb", "×duckdb", "9.2f"),
    ("max_rss_mb", "RSS MiB", "9.0f"),
    ("max_rel_diff_w", "rel Δw", "10.1e"),
    ("max_rel_diff_b", "rel Δb", "10.1e"),
)


def format_table(rows: Sequence[dict]) -> str:
    """The fixed-width table: workload, contender, wall s, ratio, RSS, diffs, notes."""
    head = f"{'wl':<3}{'contender':<17}" + "".join(title.rjust(len(_fmt(None, spec))) for _, title, spec in _COLUMNS)
    lines = [head + "  notes", "-" * (len(head) + 7)]
    for r in rows:
        cells = "".join(_fmt(r.get(key), spec) for key, _, spec in _COLUMNS)
        status = "" if r["status"] == "ok" else r["status"] + ": "
        lines.append(f"{r['workload']:<3}{r['contender']:<17}{cells}  {status}{r['notes']}")
    return "\n".join(lines)


def _target(name: str, row: dict, value: float | None, limit: float, at_most: bool = True) -> dict:
    met = value is not None and (value <= limit if at_most else value >= limit)
    return {
        "target": name,
        "workload": row["workload"],
        "contender": row["contender"],
        "value": value,
        "limit": limit,
        "met": met,
    }


def evaluate_targets(rows: Sequence[dict], rowform: dict | None = None) -> list[dict]:
    """The issues' targets, evaluated on tapefit's rows: speed, RSS, accuracy, eager speed-up, Huber, row form.

    Args:
        rows: Result rows from :func:`result_row`.
        rowform: The row-form probe's result (:mod:`benchmarks.rowform`), if it ran.

    Returns:
        One dict per (target, workload, tapefit variant): ``target``, ``value``, ``limit``, ``met``.
    """
    targets = []
    for loss, m in ((rowform or {}).get("losses") or {}).items():
        probe = {"workload": "—", "contender": f"row form {loss}"}
        targets.append(_target("row-steps/s, one core", probe, m["row_steps_per_s"], ROW_STEPS_PER_S, at_most=False))
    for r in rows:
        wl = r["workload"]
        if r["status"] == "skipped":  # not run on this workload: no target to meet or miss
            continue
        if r.get("ratio_vs_default_loss") is not None:
            targets.append(_target("huber/default loss", r, r["ratio_vs_default_loss"], HUBER_VS_DEFAULT))
            continue
        if r["kind"] == "tapefit":
            if r.get("ratio_vs_floor") is not None and r["contender"] in FLOOR_CONTENDERS:
                targets.append(_target("wall/import floor", r, r["ratio_vs_floor"], FLOOR_TARGET))
            if wl in SPEED_TARGETS:
                targets.append(_target("wall/duckdb", r, r.get("ratio_vs_duckdb"), SPEED_TARGETS[wl]))
            if wl in RSS_WORKLOADS:
                targets.append(_target("peak RSS MiB", r, r.get("max_rss_mb"), RSS_LIMIT_MB))
            if wl in ACCURACY_WORKLOADS:
                complete = r["status"] == "ok" and not any(r.get(k) for k in _COUNTS)
                diffs = (r.get("max_rel_diff_w"), r.get("max_rel_diff_b"))
                worst = max(math.inf if d is None else d for d in diffs)
                targets.append(_target("rel diff w,b (all ok)", r, worst if complete else None, ACCURACY))
        if r["kind"] == "eager" and r["status"] == "ok":
            for name, speedup in r["speedup_per_dataset"].items():
                targets.append(_target(f"eager/{name} per dataset", r, speedup, EAGER_SPEEDUP, at_most=False))
    return targets


def format_targets(targets: Sequence[dict]) -> str:
    """One line per target: met/missed, value and limit."""
    lines = []
    for t in targets:
        value = _fmt(t["value"], ".3g")
        sign = "≥" if t["target"].startswith(("eager", "row-steps")) else "≤"
        lines.append(
            f"{'met   ' if t['met'] else 'MISSED'} {t['workload']:<2} {t['contender']:<17} "
            f"{t['target']}: {value} (target {sign} {t['limit']:.4g})"
        )
    return "\n".join(lines)
