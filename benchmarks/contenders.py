"""The contenders and how each one is run: a fresh interpreter under :mod:`benchmarks.measure`.

Every contender is a command line run in its own process (so imports and start-up count, and
its memory is its own), wrapped by ``python -m benchmarks.measure``, on one workload's files.
Its per-dataset results are then read back: tapefit's from its output table, the others' from
the small Parquet file they write (:mod:`benchmarks.results`).

tapefit variants are data: add a line to :data:`TAPEFIT_VARIANTS` (or pass ``--variant``) to
benchmark another flag, e.g. ``("tapefit-mp2-gram", (*MULTI_PROCESS, "--loss_form", "gram"))``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.results import Fit, read_fits
from benchmarks.workloads import Workload

__all__ = [
    "BASELINES",
    "FLOOR",
    "IN_PROCESS",
    "MULTI_PROCESS",
    "REFERENCE",
    "ROOT",
    "RUN_DATE",
    "TAPEFIT_VARIANTS",
    "Contender",
    "Outcome",
    "default_contenders",
    "run_contender",
]

ROOT = Path(__file__).resolve().parent.parent
RUN_DATE = "2026-01-01"
REFERENCE = "duckdb"
FLOOR = "import-floor"  # python -c "import apache_beam, tensorflow" (Keras hidden): a run's least cost
MULTI_PROCESS = ("--direct_running_mode", "multi_processing", "--direct_num_workers", "2")
IN_PROCESS = ("--direct_running_mode", "in_memory")
TAPEFIT_VARIANTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tapefit-mp2", MULTI_PROCESS),
    ("tapefit-inproc", IN_PROCESS),
    ("tapefit-mp2-rows", (*MULTI_PROCESS, "--loss_form", "rows")),
    ("tapefit-mp2-huber", (*MULTI_PROCESS, "--loss", "huber")),
    ("tapefit-inproc-huber", (*IN_PROCESS, "--loss", "huber")),
)
# Variants that run on some workloads only: Huber is measured on M against the default loss
# (each against the same runner without "-huber"), the import floor on the one-dataset
# start-up workload. The row form holds every row in memory (10 GB on L): not on the
# workloads at scale.
ONLY_ON = {
    "tapefit-mp2-huber": ("M",),
    "tapefit-inproc-huber": ("M",),
    FLOOR: ("ONE",),
    "tapefit-mp2-rows": ("S", "M", "L", "K"),
}
BASELINES = ("duckdb", "pyarrow", "numpy", FLOOR)


@dataclass(frozen=True)
class Contender:
    """One way of fitting (or just reading) every dataset of a workload.

    Attributes:
        name: Name in the table and in ``--contenders``.
        kind: ``tapefit``, ``baseline`` (see :mod:`benchmarks.baselines`) or ``eager``.
        extra_args: Extra command-line arguments (tapefit variants).
    """

    name: str
    kind: str
    extra_args: tuple[str, ...] = ()

    @property
    def gives_fits(self) -> bool:
        """Whether it reports least-squares w and b to compare with DuckDB's (not the read-only floor, not Huber)."""
        return self.name not in ("pyarrow", FLOOR) and "huber" not in self.extra_args

    def command(self, workload: Workload, data: Path, out: Path, tapefit_args: Sequence[str] = ()) -> list[str] | None:
        """The command line on ``workload`` (files in ``data``), writing under ``out``.

        Args:
            workload: The workload.
            data: Its input directory.
            out: This run's private directory.
            tapefit_args: Extra arguments for every tapefit run.

        Returns:
            The command, or ``None`` when this contender does not run on this workload.
        """
        py = [sys.executable, "-m"]
        if workload.name not in ONLY_ON.get(self.name, (workload.name,)):
            return None
        if self.kind == "tapefit":
            return [
                *py,
                "jobs.fit_lines",
                "--input",
                str(data),
                "--output",
                str(out / "table"),
                "--run_date",
                RUN_DATE,
                "--group_by",
                workload.group_by,
                *self.extra_args,
                *tapefit_args,
            ]
        if self.kind == "eager":
            if not workload.eager_sample:
                return None
            sample = ",".join(workload.ids()[: workload.eager_sample])
            return [
                *py,
                "benchmarks.eager",
                "--input",
                str(data),
                "--layout",
                workload.layout,
                "--datasets",
                sample,
                "--out",
                str(out / "fits.parquet"),
            ]
        if self.name == FLOOR:
            return [*py, "benchmarks.floor", "--input", str(data), "--out", str(out / "fits.parquet")]
        return [
            *py,
            "benchmarks.baselines",
            self.name,
            "--input",
            str(data),
            "--layout",
            workload.layout,
            "--out",
            str(out / "fits.parquet"),
        ]

    def results_path(self, out: Path) -> Path:
        """Where this contender's per-dataset results are after a run in ``out``."""
        return out / "table" / f"run_date={RUN_DATE}" if self.kind == "tapefit" else out / "fits.parquet"


def default_contenders(variants: Sequence[tuple[str, Sequence[str]]] = ()) -> list[Contender]:
    """DuckDB first (the reference), then tapefit's variants, the floor, numpy and the eager loop.

    Args:
        variants: Extra tapefit variants, (name, extra arguments), after :data:`TAPEFIT_VARIANTS`.

    Returns:
        The contenders in the order they run.
    """
    tapefit = [Contender(name, "tapefit", tuple(args)) for name, args in (*TAPEFIT_VARIANTS, *variants)]
    return [
        Contender(REFERENCE, "baseline"),
        *tapefit,
        *(Contender(name, "baseline") for name in BASELINES if name != REFERENCE),
        Contender("eager", "eager"),
    ]


@dataclass
class Outcome:
    """What one run of one contender on one workload gave.

    Attributes:
        status: ``ok``, ``failed`` (non-zero exit or unreadable results), ``timeout`` or ``skipped``.
        measure: The JSON of :mod:`benchmarks.measure` (wall_s, max_rss_mb, ...), empty if skipped.
        fits: id → Fit, empty unless ``ok``.
        error: A short reason when not ``ok``.
        command: The command that ran.
    """

    status: str
    measure: dict = field(default_factory=dict)
    fits: dict[str, Fit] = field(default_factory=dict)
    error: str = ""
    command: list[str] = field(default_factory=list)


def _tail(path: Path, lines: int = 3) -> str:
    text = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return " | ".join(text[-lines:])[-300:]


def run_contender(
    contender: Contender,
    workload: Workload,
    data: Path,
    out: Path,
    tapefit_args: Sequence[str] = (),
    timeout: float | None = None,
) -> Outcome:
    """Run ``contender`` on ``workload`` under the measuring wrapper and read its results back.

    Args:
        contender: The contender.
        workload: The workload.
        data: Its input directory.
        out: A directory for this run (emptied first); holds ``log.txt`` and ``measure.json``.
        tapefit_args: Extra arguments for tapefit runs.
        timeout: Seconds before the run is killed.

    Returns:
        The outcome.
    """
    command = contender.command(workload, data, out, tapefit_args)
    if command is None:
        return Outcome("skipped", error="not run on this workload")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    wrapper = [sys.executable, "-m", "benchmarks.measure", "--json", str(out / "measure.json")]
    if timeout:
        wrapper += ["--timeout", str(timeout)]
    with (out / "log.txt").open("w") as log:
        subprocess.run([*wrapper, "--", *command], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False)
    try:
        measured = json.loads((out / "measure.json").read_text())
    except (OSError, ValueError):
        return Outcome("failed", error="no measurement: " + _tail(out / "log.txt"), command=command)
    if measured["returncode"] is None:
        return Outcome("timeout", measured, error=f"killed after {timeout} s", command=command)
    if measured["returncode"] != 0:
        return Outcome(
            "failed", measured, error=f"exit {measured['returncode']}: " + _tail(out / "log.txt"), command=command
        )
    try:
        fits = read_fits(contender.results_path(out))
    except (OSError, ValueError) as exc:
        return Outcome("failed", measured, error=f"results unreadable: {exc}"[:300], command=command)
    return Outcome("ok", measured, fits, command=command)
