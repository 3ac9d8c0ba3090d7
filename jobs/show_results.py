"""Print one partition of a tapefit output table as a readable fixed-width table.

Usage::

    python -m jobs.show_results --table TABLE_DIR [--run_date YYYY-MM-DD]
                                [--truth sample_data/truth.csv [--layout LAYOUT]]

Reads ``TABLE_DIR/run_date=D/*.parquet`` (the latest ``run_date=*`` when ``--run_date``
is omitted) with pyarrow, prints the manifest's counts and fit, then one line per
dataset sorted by id. ``w_stderr``, ``b_stderr``, ``scale`` and ``n_outliers`` are
shown when some row has them (partitions written before they existed have none;
``n_outliers`` only Huber fits). With ``--truth`` (see :mod:`jobs.make_sample_data`)
the closed-form and true w, b are shown beside each fit, statuses are checked against
the expected ones, and the last line gives the largest |w − lstsq_w|/(1+|lstsq_w|) over
``ok`` datasets whose closed form is the run's own (the same weights, an intercept, the
squared loss); for a Huber run, how far its lines and least squares lie from the true
ones. The layout defaults to the one the manifest's ``group_by`` implies.
Exit status: 0, or 2 with one line on stderr when the table, partition or truth file
does not exist.
"""

from __future__ import annotations

import argparse
import csv
import sys
import unicodedata
from collections.abc import Callable
from pathlib import Path

from pipeline.report.data import FitModel
from pipeline.table.partitions import MissingError, find_partition, load_partition

__all__ = [
    "ERROR_WIDTH",
    "ID_WIDTH",
    "MissingError",
    "display_id",
    "find_partition",
    "load_partition",
    "load_truth",
    "main",
    "render",
]

ERROR_WIDTH = 60
ID_WIDTH = 60  # the most terminal columns a dataset id takes; the table keeps the whole id
_LAYOUTS = {"file": "files", "directory": "parts", "column": "long"}


def load_truth(path: Path, layout: str) -> dict[str, dict[str, str]]:
    """Return truth.csv's rows of one layout, keyed by dataset id.

    Raises:
        MissingError: if the file does not exist or has no row of that layout.
    """
    if not path.is_file():
        raise MissingError(f"no such truth file: {path}")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    found = {row["dataset"]: row for row in rows if row["layout"] == layout}
    if not found:
        layouts = ", ".join(dict.fromkeys(row["layout"] for row in rows)) or "none"
        raise MissingError(f"no rows of layout {layout!r} in {path} (layouts: {layouts})")
    return found


def _width(text: str) -> int:
    """Terminal columns ``text`` takes: wide East Asian characters 2, combining marks 0."""
    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text
    )


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * max(0, width - _width(text))
    return fill + text if right else text + fill


def _number(value: float | int | str | None, digits: int = 6) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.{digits}g}"


def display_id(dataset: str) -> str:
    """A dataset id as shown on one line: control characters escaped, at most ``ID_WIDTH`` columns.

    For display only (a newline shows as a backslash and ``n``, a long id ends in ``…``); the table
    keeps the exact id, and truth.csv is matched on it.
    """
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in dataset)
    if _width(text) <= ID_WIDTH:
        return text
    kept, used = [], 0
    for char in text:
        used += _width(char)
        if used > ID_WIDTH - 1:
            break
        kept.append(char)
    return "".join(kept) + "…"


def _short(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= ERROR_WIDTH else text[: ERROR_WIDTH - 1] + "…"


# Columns appended to the table with robust and weighted fits: (name, significant digits).
# Shown only when some row has a value: partitions written before lack them, and each
# fit fills only some (no standard errors for Huber, no outlier count for least squares).
_NEW_COLUMNS = {"w_stderr": 2, "b_stderr": 2, "scale": 4, "n_outliers": 0}


def _columns(
    with_truth: bool, present: frozenset[str] = frozenset(), model: FitModel | None = None
) -> list[tuple[str, Callable[[dict, dict], str], bool]]:
    """(header, cell(row, truth_row), right-aligned) for every printed column.

    Args:
        with_truth: Whether truth.csv's closed-form and true w, b are shown.
        present: Which of :data:`_NEW_COLUMNS` to show.
        model: The run's fit (under Huber the closed-form columns are least squares, for comparison).
    """

    def result(name: str, digits: int = 6) -> Callable[[dict, dict], str]:
        return lambda row, _: _number(row.get(name), digits)

    def known(name: str) -> Callable[[dict, dict], str]:
        return lambda _, truth: _number(truth.get(name))

    closed = "closed form" if (model or FitModel()).exact else "lstsq"
    columns = [
        ("dataset", lambda row, _: display_id(row["dataset"]), False),
        ("status", lambda row, _: row["status"], False),
    ]
    for param in ("w", "b"):
        columns.append((param, result(param), True))
        if f"{param}_stderr" in present:
            columns.append((f"{param}_stderr", result(f"{param}_stderr", 2), True))
        if with_truth:
            columns += [
                (f"{param} {closed}", known(f"lstsq_{param}"), True),
                (f"{param} true", known(f"true_{param}"), True),
            ]
    columns += [(name, result(name, _NEW_COLUMNS[name]), True) for name in ("scale", "n_outliers") if name in present]
    columns += [(name, result(name), True) for name in ("final_loss", "r2", "steps", "n_rows", "n_dropped")]
    columns.append(("error", lambda row, _: _short(row["error"]), False))
    return columns


def _counts_line(manifest: dict | None, folder: Path) -> str:
    if manifest is None:
        return f"{folder}: no _manifest.json (partition not committed by tapefit?)"
    counts, rows = manifest["counts"], manifest["rows"]
    statuses = " · ".join(f"{name} {counts[name]}" for name in ("ok", "not_converged", "diverged", "failed"))
    null_key = f" · null key {rows['null_key']:,}" if rows.get("null_key") else ""
    return (
        f"{folder}: {counts['datasets']} datasets — {statuses} · rows used {rows['used']:,} · "
        f"dropped {rows['dropped']:,}{null_key} · run {manifest['run_id']}"
    )


def _gap(value: float, known: str) -> float:
    return abs(value - float(known)) / (1.0 + abs(float(known)))


def _largest(rows: list[dict], truth: dict[str, dict[str, str]], column: str, fitted: bool) -> dict:
    """Per parameter, the largest relative gap ``(gap, dataset)`` between a fit and ``column``'s truth.

    ``fitted`` compares the row's w, b; otherwise truth.csv's own lstsq_w, lstsq_b (least squares).
    """
    worst = {}
    for param in ("w", "b"):
        gaps = [
            (_gap(row[param] if fitted else float(truth[row["dataset"]][f"lstsq_{param}"]), known), row["dataset"])
            for row in rows
            if (known := truth[row["dataset"]].get(f"{column}_{param}"))
        ]
        worst[param] = max(gaps) if gaps else None
    return worst


def _comparable(rows: list[dict], truth: dict[str, dict[str, str]], model: FitModel) -> tuple[list[dict], str]:
    """The ok rows whose truth.csv closed form is this run's own, and why others are left out ("" if none)."""
    ok = [row for row in rows if row["status"] == "ok" and truth.get(row["dataset"], {}).get("lstsq_w")]
    if not model.exact:
        return [], f"loss {model.loss} has no closed form; the lstsq columns are least squares, for comparison"
    if not model.intercept:
        return [], "the run fitted through the origin; truth.csv's closed form has an intercept"
    run = model.weights or ""
    same = [row for row in ok if truth[row["dataset"]].get("weight_column", "") == run]
    other = len(ok) - len(same)
    using = f"column {run!r}" if run else "none"
    message = f"{other} ok dataset(s) not compared: truth.csv weighs their closed form differently (this run: {using})"
    return same, message if other else ""


def _truth_lines(rows: list[dict], truth: dict[str, dict[str, str]], model: FitModel | None = None) -> list[str]:
    """Coverage and status checks, then the worst relative gap from the closed form (for Huber: from the truth)."""
    model = model or FitModel()
    lines = []
    ids = {row["dataset"] for row in rows}
    for label, names in (
        ("in truth.csv but not in the table", truth.keys() - ids),
        ("not in truth.csv", ids - truth.keys()),
    ):
        if names:
            lines.append(f"{label}: {', '.join(display_id(name) for name in sorted(names))}")
    wrong = [
        f"{display_id(row['dataset'])} ({row['status']}, expected {truth[row['dataset']]['expected_status']})"
        for row in rows
        if row["dataset"] in truth and row["status"] != truth[row["dataset"]]["expected_status"]
    ]
    more = f", … ({len(wrong) - 8} more)" if len(wrong) > 8 else ""
    lines.append(
        f"{len(wrong)} status(es) differ from expected: {', '.join(wrong[:8])}{more}"
        if wrong
        else "every status is as expected"
    )
    same, left_out = _comparable(rows, truth, model)
    if left_out:
        lines.append(left_out)
    worst = _largest(same, truth, "lstsq", fitted=True)
    if worst["w"] is not None:
        (gap_w, name_w), (gap_b, name_b) = worst["w"], worst["b"]
        lines.append(
            f"largest |w − lstsq_w|/(1+|lstsq_w|) over {len(same)} ok datasets: {gap_w:.3g} ({display_id(name_w)}); "
            f"same for b: {gap_b:.3g} ({display_id(name_b)})"
        )
    elif model.exact:
        lines.append("no ok dataset with a closed-form answer to compare")
    if not model.exact:
        known = [row for row in rows if row["status"] == "ok" and truth.get(row["dataset"], {}).get("true_w")]
        fit, least = _largest(known, truth, "true", fitted=True), _largest(known, truth, "true", fitted=False)
        if fit["w"] is None or least["w"] is None:
            lines.append("no ok dataset with a known generating line to compare")
        else:
            lines.append(
                f"largest |w − true_w|/(1+|true_w|) over {len(known)} ok datasets with a known line: "
                f"{model.loss} {fit['w'][0]:.3g} ({display_id(fit['w'][1])}), least squares {least['w'][0]:.3g} "
                f"({display_id(least['w'][1])}); same for b: {model.loss} {fit['b'][0]:.3g}, "
                f"least squares {least['b'][0]:.3g}"
            )
    return lines


def render(
    rows: list[dict], truth: dict[str, dict[str, str]] | None = None, model: FitModel | None = None
) -> list[str]:
    """Return the table's lines (header, rule, one per row), plus truth checks if given.

    Args:
        rows: Output rows as dicts, in the order to print.
        truth: truth.csv rows keyed by dataset id, or None to show results only.
        model: The run's fit (:meth:`FitModel.from_manifest`); least squares if None.

    Returns:
        The lines to print, without newlines.
    """
    present = frozenset(name for name in _NEW_COLUMNS if any(row.get(name) is not None for row in rows))
    columns = _columns(truth is not None, present, model)
    cells = [[cell(row, (truth or {}).get(row["dataset"], {})) for _, cell, _ in columns] for row in rows]
    widths = [max([_width(header)] + [_width(line[i]) for line in cells]) for i, (header, _, _) in enumerate(columns)]
    lines = [
        "  ".join(
            _pad(header, width, right) for (header, _, right), width in zip(columns, widths, strict=True)
        ).rstrip()
    ]
    lines.append("  ".join("-" * width for width in widths))
    for line in cells:
        lines.append(
            "  ".join(
                _pad(text, width, right) for text, (_, _, right), width in zip(line, columns, widths, strict=True)
            ).rstrip()
        )
    if truth is not None:
        lines += _truth_lines(rows, truth, model)
    return lines


def _layout(requested: str | None, manifest: dict | None) -> str:
    if requested:
        return requested
    group_by = ((manifest or {}).get("options") or {}).get("group_by", "")
    layout = _LAYOUTS.get(group_by.split(":", 1)[0])
    if layout is None:
        raise MissingError("cannot tell the layout from the manifest; pass --layout files|parts|long")
    return layout


def main(argv: list[str] | None = None) -> int:
    """Print the partition; return the process exit status (2 when something is missing)."""
    parser = argparse.ArgumentParser(prog="python -m jobs.show_results", description=__doc__.split("\n")[0])
    parser.add_argument("--table", required=True, help="The output table directory (TABLE_DIR).")
    parser.add_argument("--run_date", help="Partition to show, YYYY-MM-DD (default: the latest).")
    parser.add_argument("--truth", help="A truth.csv with known answers (from jobs.make_sample_data).")
    parser.add_argument(
        "--layout",
        help="truth.csv rows to use: files, parts, long, weighted, outliers (default: from the manifest's group_by).",
    )
    args = parser.parse_args(argv)
    try:
        folder = find_partition(Path(args.table), args.run_date)
        rows, manifest = load_partition(folder)
        truth = load_truth(Path(args.truth), _layout(args.layout, manifest)) if args.truth else None
    except MissingError as error:
        print(f"show_results: error: {error}", file=sys.stderr)
        return 2
    model = FitModel.from_manifest(manifest)
    print(_counts_line(manifest, folder))
    if manifest is not None:
        print(f"fit: loss {model.describe_loss()} · weights {model.describe_weights()} · {model.describe_model()}")
    print("\n".join(render(rows, truth, model)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
