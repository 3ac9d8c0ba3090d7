"""Write one self-contained HTML report of a partition of a tapefit output table.

Usage::

    tapefit report --table TABLE_DIR [--run_date YYYY-MM-DD] [--out report.html]
    python -m jobs.report --table TABLE_DIR ...

The page shows the run (date, id, loss, weights, model, options, versions, counts per
status, wall time), histograms of w, b, final_loss, r² and steps, the failed /
diverged / not-converged datasets with their errors, scatters of the worst and of
random ok fits with the fit's closed-form line (least squares for comparison under
``--loss huber``, whose outliers are marked), standard errors and scale, and what
changed since the previous partition. ``--run_date``
defaults to the latest partition; ``--out`` to ``TABLE_DIR/run_date=D/_report.html``
(readers of the table skip ``_`` names, and a rerun of that date replaces it with
the partition). Needs matplotlib: ``pip install 'tapefit[report]'``.
Exit status: 0, or 2 with one line on stderr for a usage problem (missing table or
partition, bad option, matplotlib not installed, output not writable).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from jobs.console import quiet_stderr, set_up_logging

__all__ = ["main"]

PROG = "tapefit report"
REPORT_NAME = "_report.html"
EXIT_OK, EXIT_USAGE = 0, 2


class _UsageError(Exception):
    """A problem with the command line or what it names; one line for the user."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        raise _UsageError(message)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"expected a number >= 0 (0.01 = 1%), got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument(
        "--table", required=True, metavar="TABLE_DIR", help="The output table directory (TABLE_DIR), local."
    )
    parser.add_argument(
        "--run_date", metavar="YYYY-MM-DD", help="Partition to report, YYYY-MM-DD (default: the latest)."
    )
    parser.add_argument(
        "--out", metavar="FILE", help=f"HTML file to write (default: TABLE_DIR/run_date=D/{REPORT_NAME})."
    )
    parser.add_argument(
        "--panels", type=_count, default=6, metavar="N", help="Worst fits, and random ok fits, drawn as scatters (6)."
    )
    parser.add_argument(
        "--change_threshold",
        type=_fraction,
        default=0.01,
        metavar="FRACTION",
        help="Relative change of w or b that counts as moved since the previous partition (0.01 = 1%%).",
    )
    parser.add_argument(
        "--max_points", type=_count, default=2000, metavar="N", help="Most points per scatter, sampled (2000)."
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Write the report; return the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv
    set_up_logging(verbose)
    with quiet_stderr(enabled=not verbose):
        return _main([arg for arg in argv if arg != "--verbose"])


def _main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
        os.environ.setdefault("MPLBACKEND", "Agg")
        try:
            import matplotlib  # noqa: F401 (checked here so a missing extra is one line, not a traceback)
        except ImportError:
            raise _UsageError("matplotlib is not installed; pip install 'tapefit[report]'") from None

        from pipeline.report import ReportSettings, build_report
        from pipeline.table.partitions import MissingError

        settings = ReportSettings(
            panels=args.panels, change_threshold=args.change_threshold, max_points=args.max_points
        )
        try:
            page, folder = build_report(Path(args.table), args.run_date, settings)
        except MissingError as error:
            raise _UsageError(str(error)) from None
        out = Path(args.out) if args.out else folder / REPORT_NAME
        try:
            out.write_text(page, encoding="utf-8")
        except OSError as error:
            raise _UsageError(f"cannot write {out}: {error.strerror or error}") from None
    except _UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{PROG}: wrote {out} ({len(page) / 1e6:.1f} MB)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
