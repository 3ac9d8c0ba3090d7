"""Print one partition of a tapefit output table as a readable fixed-width table.

Usage::

    python -m jobs.show_results --table TABLE_DIR [--run_date YYYY-MM-DD]
                                [--truth sample_data/truth.csv [--layout files|parts|long]]

Reads ``TABLE_DIR/run_date=D/*.parquet`` (the latest ``run_date=*`` when ``--run_date``
is omitted) with pyarrow, prints the manifest's counts, then one line per dataset
sorted by id. With ``--truth`` (see :mod:`jobs.make_sample_data`) the closed-form and
true w, b are shown beside each fit, statuses are checked against the expected ones,
and the last line gives the largest |w − lstsq_w|/(1+|lstsq_w|) over ``ok`` datasets.
The layout defaults to the one the manifest's ``group_by`` implies.
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
        MissingError: if the file does not exist.
    """
    if not path.is_file():
        raise MissingError(f"no such truth file: {path}")
    with path.open(encoding="utf-8", newline="") as handle:
        return {row["dataset"]: row for row in csv.DictReader(handle) if row["layout"] == layout}


def _width(text: str) -> int:
    """Terminal columns ``text`` takes: wide East Asian characters 2, combining marks 0."""
    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text
    )


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * max(0, width - _width(text))
    return fill + text if right else text + fill


def _number(value: float | int | str | None) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.6g}"


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


def _columns(with_truth: bool) -> list[tuple[str, Callable[[dict, dict], str], bool]]:
    """(header, cell(row, truth_row), right-aligned) for every printed column."""

    def result(name: str) -> Callable[[dict, dict], str]:
        return lambda row, _: _number(row[name])

    def known(name: str) -> Callable[[dict, dict], str]:
        return lambda _, truth: _number(truth.get(name))

    columns = [
        ("dataset", lambda row, _: display_id(row["dataset"]), False),
        ("status", lambda row, _: row["status"], False),
    ]
    for param in ("w", "b"):
        columns.append((param, result(param), True))
        if with_truth:
            columns += [
                (f"{param} closed form", known(f"lstsq_{param}"), True),
                (f"{param} true", known(f"true_{param}"), True),
            ]
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


def _truth_lines(rows: list[dict], truth: dict[str, dict[str, str]]) -> list[str]:
    """Coverage and status checks, then the worst relative deviation from closed form."""
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
    worst = {}
    for param in ("w", "b"):
        gaps = [
            (abs(row[param] - float(known)) / (1.0 + abs(float(known))), row["dataset"])
            for row in rows
            if row["status"] == "ok" and (known := truth.get(row["dataset"], {}).get(f"lstsq_{param}"))
        ]
        worst[param] = (max(gaps), len(gaps)) if gaps else None
    if worst["w"] is None:
        lines.append("no ok dataset with a closed-form answer to compare")
    else:
        (gap_w, name_w), count = worst["w"]
        (gap_b, name_b), _ = worst["b"]
        name_w, name_b = display_id(name_w), display_id(name_b)
        lines.append(
            f"largest |w − lstsq_w|/(1+|lstsq_w|) over {count} ok datasets: {gap_w:.3g} ({name_w}); "
            f"same for b: {gap_b:.3g} ({name_b})"
        )
    return lines


def render(rows: list[dict], truth: dict[str, dict[str, str]] | None = None) -> list[str]:
    """Return the table's lines (header, rule, one per row), plus truth checks if given.

    Args:
        rows: Output rows as dicts, in the order to print.
        truth: truth.csv rows keyed by dataset id, or None to show results only.

    Returns:
        The lines to print, without newlines.
    """
    columns = _columns(truth is not None)
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
        lines += _truth_lines(rows, truth)
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
        "--layout", choices=sorted(_LAYOUTS.values()), help="truth.csv rows to use (default: from manifest)."
    )
    args = parser.parse_args(argv)
    try:
        folder = find_partition(Path(args.table), args.run_date)
        rows, manifest = load_partition(folder)
        truth = load_truth(Path(args.truth), _layout(args.layout, manifest)) if args.truth else None
    except MissingError as error:
        print(f"show_results: error: {error}", file=sys.stderr)
        return 2
    print(_counts_line(manifest, folder))
    print("\n".join(render(rows, truth)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
