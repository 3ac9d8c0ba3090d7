"""Command-line options, validated once and frozen into a :class:`~pipeline.config.settings.JobConfig`.

All of tapefit's flags live in one ``PipelineOptions`` subclass, so every standard
Beam flag (``--runner``, ``--direct_num_workers``, ``--temp_location``, ...) passes
straight through. At the edge the options are validated once and turned into a
:class:`~pipeline.config.settings.JobConfig`; transforms only ever see that frozen object.
"""

from __future__ import annotations

import datetime as dt
import math
import re

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from pipeline.config.errors import ConfigError
from pipeline.config.output import is_bigquery, parse_bigquery_output
from pipeline.config.run_date import fill_run_date
from pipeline.config.settings import FitConfig, GroupBy, JobConfig, new_run_id

__all__ = ["TapefitOptions", "config_from_options"]

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class TapefitOptions(PipelineOptions):
    """tapefit's own flags; any other Beam pipeline flag may be given beside them."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:  # noqa: ANN001 (Beam's parser type is private)
        group = parser.add_argument_group("tapefit")
        group.add_argument(
            "--input",
            metavar="PATTERN",
            help="Input: a directory (every *.parquet below it, recursively), a glob, "
            "or one Parquet file. Local paths or any Beam filesystem (gs://, s3://).",
        )
        group.add_argument(
            "--output",
            metavar="TABLE_DIR",
            help="Output table directory; results go to TABLE_DIR/run_date=YYYY-MM-DD/.",
        )
        group.add_argument(
            "--run_date",
            default=None,
            metavar="YYYY-MM-DD",
            help="Date of the output partition, YYYY-MM-DD (default: today, UTC).",
        )
        group.add_argument(
            "--group_by",
            default="file",
            metavar="{file,directory,column:NAME}",
            help="What one dataset is: 'file' (default), 'directory' (every directory "
            "directly holding Parquet files), or 'column:NAME' (rows grouped by NAME).",
        )
        group.add_argument("--x_column", default="x", metavar="NAME", help="Column holding x (default: x).")
        group.add_argument("--y_column", default="y", metavar="NAME", help="Column holding y (default: y).")
        group.add_argument(
            "--learning_rate",
            type=float,
            default=None,
            metavar="ETA",
            help="Gradient-descent step size η (default: 0.1; 0.5 for --loss huber, whose step is "
            "preconditioned by the inverse curvature, so 0.5 is a Newton step; below 1).",
        )
        group.add_argument(
            "--max_steps",
            type=int,
            default=1000,
            metavar="N",
            help="Most gradient-descent updates per dataset (default: 1000).",
        )
        group.add_argument(
            "--tolerance",
            type=float,
            metavar="TOL",
            default=0.0,
            help="Converged once the gradient's 2-norm (standardized coordinates) is at most this; "
            "0 (default): to the rounding floor of --dtype, i.e. machine precision.",
        )
        group.add_argument(
            "--standardize",
            dest="standardize",
            action="store_true",
            default=True,
            help="Descend on standardized x, y and map back (default).",
        )
        group.add_argument(
            "--no_standardize",
            dest="standardize",
            action="store_false",
            default=True,
            help="Descend on raw x, y: the classic textbook loop (may diverge).",
        )
        group.add_argument(
            "--dtype",
            default="float64",
            metavar="{float64,float32}",
            help="Precision of the descent loop: float64 (default) or float32.",
        )
        group.add_argument(
            "--loss",
            default="squared",
            metavar="{squared,huber}",
            help="The objective: 'squared' (default, least squares) or 'huber' (Huber's robust loss with a "
            "jointly estimated scale σ, as scikit-learn's HuberRegressor and Spark ML; outliers count linearly).",
        )
        group.add_argument(
            "--huber_epsilon",
            type=float,
            default=1.35,
            metavar="EPS",
            help="Huber's ε (> 1): residuals beyond ε·σ count linearly (default: 1.35, 95%% efficiency).",
        )
        group.add_argument(
            "--weight_column",
            default=None,
            metavar="NAME",
            help="Column of row weights (both losses): null, NaN, infinite or negative weights drop the row; "
            "zero weights carry no information. Default: every row weighs 1.",
        )
        group.add_argument(
            "--intercept",
            dest="intercept",
            action="store_true",
            default=True,
            help="Fit y = w·x + b (default).",
        )
        group.add_argument(
            "--no_intercept",
            dest="intercept",
            action="store_false",
            default=True,
            help="Fit y = w·x through the origin: b is reported as exactly 0 and r² is uncentred.",
        )
        group.add_argument(
            "--loss_form",
            default=None,
            metavar="{gram,rows}",
            help="How the loss is evaluated: 'gram' (the default for squared) from each dataset's moments, "
            "O(1) a step, datasets larger than memory streamed; 'rows' (the only form of huber) row by row, "
            "the whole dataset in memory.",
        )
        group.add_argument(
            "--max_rows_in_memory",
            type=int,
            default=0,
            metavar="N",
            help="Row form: a dataset with more rows than this is failed, never an out-of-memory crash "
            "(default 0: sized for the worker, a quarter of its memory).",
        )
        group.add_argument(
            "--batch_size",
            type=int,
            default=2000,
            metavar="N",
            help="Most datasets fitted together in one compiled call (default: 2000).",
        )
        group.add_argument(
            "--read_threads",
            type=int,
            default=0,
            metavar="N",
            help="Threads each worker reads on: a long table's chunks are split by key and reduced, and small "
            "files read ahead, while the next is read; the numbers never change (default 0: one per core "
            "with the in-process DirectRunner, 1 with runners that start a worker process per core, as "
            "multi_processing and Dataflow do).",
        )
        group.add_argument(
            "--incremental",
            action="store_true",
            default=False,
            help="Copy the previous partition's row of every dataset whose input files and fit settings are "
            "unchanged (its reused_from says so); refit the changed, new and previously failed ones.",
        )
        group.add_argument(
            "--warm_start",
            action="store_true",
            default=False,
            help="Start each dataset's gradient descent from its (w, b) in the previous partition, not (0, 0).",
        )
        group.add_argument(
            "--max_failed_fraction",
            type=float,
            default=1.0,
            metavar="F",
            help="Exit 3 (after writing the table) when more than this fraction of the datasets "
            "ends failed or diverged, 0..1 (default: 1.0, never).",
        )
        group.add_argument(
            "--progress_interval",
            type=float,
            default=10.0,
            metavar="SECONDS",
            help="On local runs, print progress at most this often once a run is longer "
            "than that (default: 10; 0 turns it off).",
        )
        group.add_argument(
            "--lock_timeout",
            type=float,
            default=300.0,
            metavar="SECONDS",
            help="Local tables: how long to wait for another run of the same date to finish "
            "committing before refusing with exit 4 (default: 300).",
        )


def _weight_column(name: str | None, x_column: str, y_column: str, key_column: str | None) -> str | None:
    if name is None:
        return None
    if not name.strip():
        raise ConfigError("--weight_column must name a column (leave it out for unweighted fits)")
    if name in (x_column, y_column, key_column):
        raise ConfigError(f"--weight_column {name!r} must differ from the x, y and grouping columns")
    return name


def _parse_group_by(value: str) -> tuple[str, str | None]:
    if value in (GroupBy.FILE, GroupBy.DIRECTORY):
        return value, None
    if value.startswith("column:") and value[len("column:") :].strip():
        return GroupBy.COLUMN, value[len("column:") :]
    raise ConfigError(f"--group_by must be 'file', 'directory' or 'column:NAME', got {value!r}")


def _parse_run_date(value: str | None, now: dt.datetime) -> str:
    if value is None:
        return now.date().isoformat()
    try:
        if not _DATE.match(value):
            raise ValueError
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise ConfigError(f"--run_date must be a date YYYY-MM-DD, got {value!r}") from None


def _fill_input(pattern: str, run_date: str) -> str:
    """``--input`` with ``{run_date}`` placeholders filled in."""
    try:
        return fill_run_date(pattern, dt.date.fromisoformat(run_date))
    except ValueError as error:
        raise ConfigError(f"--input {pattern!r}: {error}") from None


def _check_output(output: str, looks_back: bool) -> None:
    if is_bigquery(output):
        try:
            parse_bigquery_output(output)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if looks_back:
            raise ConfigError("--incremental and --warm_start need a Parquet table --output, not BigQuery")


def config_from_options(options: PipelineOptions, now: dt.datetime | None = None) -> JobConfig:
    """Validate tapefit's options and freeze them into a :class:`JobConfig`.

    Args:
        options: Pipeline options holding (at least) the :class:`TapefitOptions` flags.
        now: The launch time (UTC); defaults to the current time. Tests pass a fixed one.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: with a one-line message when any option is missing or invalid.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    opts = options.view_as(TapefitOptions)
    if not opts.input:
        raise ConfigError("--input is required (a directory, glob or Parquet file)")
    if not opts.output:
        raise ConfigError("--output is required (the output table directory)")
    group_by, key_column = _parse_group_by(opts.group_by)
    for flag, name in (("--x_column", opts.x_column), ("--y_column", opts.y_column)):
        if not name:
            raise ConfigError(f"{flag} must not be empty")
    if key_column in (opts.x_column, opts.y_column):
        raise ConfigError(f"--group_by column {key_column!r} must differ from the x and y columns")
    run_date = _parse_run_date(opts.run_date, now)
    input_pattern = _fill_input(opts.input, run_date)
    _check_output(opts.output, opts.incremental or opts.warm_start)
    if not (0.0 <= opts.max_failed_fraction <= 1.0):
        raise ConfigError(f"--max_failed_fraction must be between 0 and 1, got {opts.max_failed_fraction!r}")
    if not (math.isfinite(opts.progress_interval) and opts.progress_interval >= 0):
        raise ConfigError(f"--progress_interval must be a number of seconds >= 0, got {opts.progress_interval!r}")
    if not (math.isfinite(opts.lock_timeout) and opts.lock_timeout >= 0):
        raise ConfigError(f"--lock_timeout must be a number of seconds >= 0, got {opts.lock_timeout!r}")
    weights = _weight_column(opts.weight_column, opts.x_column, opts.y_column, key_column)
    fit = FitConfig(
        learning_rate=opts.learning_rate,
        max_steps=opts.max_steps,
        tolerance=opts.tolerance,
        standardize=opts.standardize,
        dtype=opts.dtype,
        loss=opts.loss,
        huber_epsilon=opts.huber_epsilon,
        intercept=opts.intercept,
        weights=weights,
        loss_form=opts.loss_form,
    )
    if opts.batch_size < 1:
        raise ConfigError(f"--batch_size must be at least 1, got {opts.batch_size!r}")
    if opts.max_rows_in_memory < 0:
        raise ConfigError(f"--max_rows_in_memory must be >= 0 (0: sized for the worker), got {opts.max_rows_in_memory}")
    if opts.read_threads < 0:
        raise ConfigError(f"--read_threads must be >= 0 (0: the runner's default), got {opts.read_threads}")
    return JobConfig(
        input=input_pattern,
        output=opts.output.rstrip("/") or opts.output,
        run_date=run_date,
        group_by=group_by,
        key_column=key_column,
        x_column=opts.x_column,
        y_column=opts.y_column,
        fit=fit,
        batch_size=opts.batch_size,
        incremental=opts.incremental,
        warm_start=opts.warm_start,
        run_id=new_run_id(now),
        started_at=now,
        input_template=opts.input if input_pattern != opts.input else None,
        max_failed_fraction=opts.max_failed_fraction,
        progress_interval=opts.progress_interval,
        max_rows_in_memory=opts.max_rows_in_memory,
        lock_timeout=opts.lock_timeout,
        read_threads=opts.read_threads or _default_read_threads(options),
    )


def _default_read_threads(options: PipelineOptions) -> int:
    """0 (one per core of the worker) for the in-process DirectRunner, the only one with a single worker process.

    Elsewhere 1: where the runner starts a worker process per core (DirectRunner's
    multi_processing, Dataflow), threads on top only contend for the same cores
    (measured: 2 processes on 2 cores, K10 took 58.0 s with 2 threads each, 52.5 with one).
    """
    runner = (options.view_as(StandardOptions).runner or "DirectRunner").lower()
    in_process = options.view_as(DirectOptions).direct_running_mode in (None, "in_memory")
    return 0 if runner.removesuffix("runner") in ("direct", "switchingdirect") and in_process else 1
