"""tapefit's main job: fit y = w·x + b to every Parquet dataset of an input.

Usage::

    python -m jobs.fit_lines --input PATTERN --output TABLE_DIR [--run_date YYYY-MM-DD]
                             [options] [any Beam pipeline options]

This launcher only parses and validates options, checks the input and output, takes
the run's lease on its staging folder, runs the pipeline built by
:func:`pipeline.graph.build.build` and prints a summary. Exit status: 0 on success, 2
for a usage problem (bad option, no input files, unwritable output), 1 when the
pipeline itself fails, 3 when the table was written but more than
``--max_failed_fraction`` of the datasets failed or diverged, 4 when another run kept
the partition's commit lock for all of ``--lock_timeout``, 130/143 when stopped by
SIGINT/SIGTERM. Every failure ends in one line on stderr (the traceback goes to a log
file that the line names, or to the console with ``--verbose``). Local inputs are
listed before the run; remote ones (``gs://``) are left to the workers, and dry runs
contact nothing. TensorFlow is never imported here.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
import time

from jobs.console import divert_everything, log_file, quiet_stderr, set_up_logging, write_to_log
from jobs.signals import (
    WORKER_EXIT,
    Interrupted,
    Stopped,
    describe_exit,
    ignore_stop_signals,
    interruption,
    stop_descendants,
    stop_on_signals,
)

__all__ = ["console_main", "main"]

USAGE = (
    "python -m jobs.fit_lines --input PATTERN --output TABLE_DIR [--run_date YYYY-MM-DD] "
    "[options] [any Beam pipeline options]"
)
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TOO_MANY_FAILED, EXIT_BUSY = 0, 1, 2, 3, 4
# How a lost worker shows in the runner's error (or in the traceback it logged).
_WORKER_DIED = re.compile(rf"{WORKER_EXIT.pattern}|Channel closed prematurely|Socket closed|StatusCode\.UNAVAILABLE")
_LOCAL_RUNNERS = ("direct", "fnapi", "prism")


class UsageError(Exception):
    """A problem with the command line, input or output; one line for the user."""


class _StrictParser(argparse.ArgumentParser):
    """An argparse parser that raises instead of printing usage and exiting."""

    def error(self, message: str) -> None:
        raise UsageError(message)

    def add_value_provider_argument(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        """Accept Beam's templated flags as plain ones (only their names matter here)."""
        self.add_argument(*args, **kwargs)


def _help() -> str:
    from pipeline.config.options import TapefitOptions

    parser = argparse.ArgumentParser(prog="tapefit", usage=USAGE, add_help=False)
    TapefitOptions._add_argparse_args(parser)  # noqa: SLF001 (Beam's own extension point)
    return parser.format_help() + (
        "\nAny Beam pipeline option may follow, e.g. --runner DataflowRunner, "
        "--direct_running_mode multi_processing --direct_num_workers 2, --temp_location gs://...\n"
        "\n--verbose shows every log line (TensorFlow's native ones included) and the traceback of a failure.\n"
        "\nSubcommand: tapefit report --table TABLE_DIR [--run_date D] [--out FILE] writes an HTML report "
        "of a partition (tapefit report --help).\n"
    )


def _check_flags(argv: list[str]) -> None:
    """Reject unknown flags and malformed values (Beam would silently ignore them)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    parser = _StrictParser(add_help=False, allow_abbrev=False)
    classes = {}
    for cls in PipelineOptions.__subclasses__():
        classes.setdefault(str(cls), cls)
    for cls in classes.values():
        cls._add_argparse_args(parser)  # noqa: SLF001
    _, unknown = parser.parse_known_args(argv)
    if unknown:
        word = unknown[0].split("=", 1)[0]
        raise UsageError(f"unrecognized option {word}" if word.startswith("-") else f"unexpected argument {word!r}")


def _local_worker_defaults(argv: list[str], verbose: bool) -> list[str]:
    """Keep DirectRunner's worker processes as quiet as the launcher (users may override)."""
    given = " ".join(argv)
    local = "--runner" not in given or any(f"--runner{sep}DirectRunner" in given for sep in ("=", " "))
    if local and not verbose and "--default_sdk_harness_log_level" not in given:
        return [*argv, "--default_sdk_harness_log_level=ERROR"]
    return argv


def _is_remote(path: str) -> bool:
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.get_scheme(path) not in (None, "file")


def _dataset_total(group_by: str, files: list[str]) -> int | None:
    """Datasets the listed files make, for progress lines (unknown before reading for columns)."""
    if group_by == "file":
        return len(files)
    if group_by == "directory":
        return len({path.rsplit("/", 1)[0] for path in files})
    return None


def _dry_run_flag(argv: list[str]) -> list[str]:
    """Let ``--dry_run`` stand alone (Beam's flag takes a value, and any text, even "False", is true)."""
    out, args = [], iter(argv)
    for arg in args:
        if arg == "--dry_run" or arg.startswith("--dry_run="):
            value = arg.partition("=")[2] if "=" in arg else None
            if value is None:
                following = next(args, None)
                if following is not None and not following.startswith("-"):
                    value = following
                elif following is not None:
                    out.extend(["--dry_run=True", following])
                    continue
            if value is None or value.lower() in ("1", "true", "yes"):
                out.append("--dry_run=True")
            elif value.lower() not in ("0", "false", "no"):
                raise UsageError(f"--dry_run takes no value (or true/false), got {value!r}")
            continue
        out.append(arg)
    return out


_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$|^-(inf|infinity|nan)$", re.IGNORECASE)


def _negative_values(argv: list[str]) -> list[str]:
    """Join ``--flag -1e-3`` into ``--flag=-1e-3`` (argparse reads "-1e-3" as an option, not a value)."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and "=" not in arg and i + 1 < len(argv) and _NEGATIVE_NUMBER.match(argv[i + 1]):
            out.append(f"{arg}={argv[i + 1]}")
            i += 2
        else:
            out.append(arg)
            i += 1
    return out


def _check_runner(options) -> None:  # noqa: ANN001 (Beam's PipelineOptions)
    """A runner that does not exist, or Dataflow without the options it needs, is a usage error."""
    from apache_beam.options.pipeline_options import StandardOptions
    from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator
    from apache_beam.runners.runner import create_runner

    from pipeline.config.errors import one_line

    name = options.view_as(StandardOptions).runner
    if not name:
        return
    try:
        runner = create_runner(name)
    except (ValueError, ImportError, AttributeError) as error:
        raise UsageError(f"--runner {name}: {one_line(error, 400)}") from None
    if type(runner).__name__ in ("DataflowRunner", "TestDataflowRunner"):  # the checks Dataflow makes at launch
        errors = PipelineOptionsValidator(options, runner).validate()
        if errors:
            raise UsageError(f"--runner {name}: {one_line(' '.join(errors), 400)}")


def _prepare(argv: list[str], verbose: bool, state: dict):  # noqa: ANN202 (Beam options, JobConfig, dataset total)
    """Validate everything that can be checked before the run; ``state`` gets the config and lease."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, TestOptions

    from pipeline.config.errors import ConfigError, one_line
    from pipeline.config.faults import checkpoint
    from pipeline.config.options import config_from_options
    from pipeline.config.output import is_bigquery
    from pipeline.discover.layout import input_layout, list_dataset_files
    from pipeline.table.cleanup import remove_dead_runs
    from pipeline.table.leases import RunLease

    argv = _negative_values(_dry_run_flag(argv))
    _check_flags(argv)
    options = PipelineOptions(_local_worker_defaults(argv, verbose))
    try:
        config = config_from_options(options)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    state["config"] = config
    _check_runner(options)
    dry_run = options.view_as(TestOptions).dry_run
    if dry_run and (options.view_as(StandardOptions).runner or "") != "DataflowRunner":
        raise UsageError("--dry_run needs --runner DataflowRunner (other runners would really run the job)")
    total = None
    if not (dry_run or _is_remote(config.input)):  # the workers list remote inputs, with their credentials
        try:
            files = list_dataset_files(input_layout(config.input, config.output))
        except ConfigError as error:  # the input lies inside the output table
            raise UsageError(str(error)) from None
        except Exception as error:  # noqa: BLE001 (any listing failure is a usage problem here)
            raise UsageError(f"cannot list input {config.input}: {one_line(error, 400)}") from None
        if not files:
            raise UsageError(f"input matched no Parquet file: {config.input}")
        total = _dataset_total(config.group_by, files)
    checkpoint("discovery")
    lease = None
    if not (dry_run or is_bigquery(config.output)):
        try:
            lease = RunLease(config).acquire()  # also the check that the output can be written
        except Exception as error:  # noqa: BLE001
            raise UsageError(f"cannot write output {config.output}: {one_line(error, 400)}") from None
        state["lease"] = lease
        if not _is_remote(config.output):
            remove_dead_runs(config)  # and put back a partition that a killed run had moved aside
            if config.incremental or config.warm_start:  # a previous partition that is not tapefit's: say so now
                from pipeline.table.history import ForeignPartitionError, load_previous

                try:
                    load_previous(config)
                except ForeignPartitionError as error:
                    raise UsageError(one_line(error, 600)) from None
    return options, config, total


def _run(options, config, total: int | None):  # noqa: ANN001, ANN202 (Beam options, JobConfig -> PipelineResult)
    """Build and run the pipeline; on local runners, report progress while it runs."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import StandardOptions, TestOptions

    from pipeline.graph.build import build
    from pipeline.observe.progress import ENV, report_progress

    p = beam.Pipeline(options=options)
    build(p, config)
    runner = (options.view_as(StandardOptions).runner or "direct").lower()
    if options.view_as(TestOptions).dry_run or not runner.startswith(_LOCAL_RUNNERS):
        result = p.run()
        result.wait_until_finish()
        return result
    with tempfile.TemporaryDirectory(prefix="tapefit-progress-") as folder:
        os.environ[ENV] = folder  # worker processes inherit it; see pipeline.observe.progress
        try:
            with report_progress(
                folder, total, config.progress_interval, lambda line: print(line, file=sys.stderr, flush=True)
            ):
                result = p.run()
                result.wait_until_finish()
        finally:
            os.environ.pop(ENV, None)
    return result


def _finish(options, config, result, started: float) -> int:  # noqa: ANN001 (Beam options, JobConfig, result)
    """Print the summary (or the dry run's job) and decide the exit status."""
    from apache_beam.options.pipeline_options import DebugOptions, TestOptions

    from jobs.summary import bigquery_manifest, dry_run_report, summary, too_many_failed
    from pipeline.config.output import is_bigquery
    from pipeline.observe.metrics import collect_metrics
    from pipeline.table.commit import add_to_manifest, read_manifest

    if options.view_as(TestOptions).dry_run:
        print(dry_run_report(result, options.view_as(DebugOptions).dataflow_job_file))
        return EXIT_OK
    metrics = collect_metrics(result)
    if is_bigquery(config.output):
        if metrics is None:
            print(f"tapefit: done in {time.monotonic() - started:.1f} s; this runner reported no counts")
            return EXIT_OK
        manifest = bigquery_manifest(config, metrics)
    else:
        manifest = read_manifest(config)
        if metrics is not None:
            try:
                manifest = add_to_manifest(config, {"metrics": metrics})
            except Exception as error:  # noqa: BLE001 (the table is written; metrics are extra)
                logging.warning("could not add the metrics to the manifest: %s", error)
    print(summary(manifest, time.monotonic() - started, metrics))
    reason = too_many_failed(manifest["counts"], config.max_failed_fraction)
    if reason:
        print(f"tapefit: error: {reason}", file=sys.stderr)
        return EXIT_TOO_MANY_FAILED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run the job with command-line ``argv``; return the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv
    argv = [arg for arg in argv if arg != "--verbose"]
    set_up_logging(verbose)
    state: dict = {}
    with stop_on_signals(), quiet_stderr(enabled=not verbose):
        try:
            return _main(argv, verbose, state)
        except Interrupted as interrupted:  # workers are stopped while stderr is still filtered
            ignore_stop_signals()
            stop = interrupted
            line = _stop(stop, state)
    print(line, file=sys.stderr, flush=True)
    return stop.exit_code


def _main(argv: list[str], verbose: bool, state: dict) -> int:
    if not argv or "-h" in argv or "--help" in argv:
        print(_help(), end="")
        return EXIT_OK if argv else EXIT_USAGE
    started = time.monotonic()
    try:
        options, config, total = _prepare(argv, verbose, state)
    except UsageError as error:
        _release(state)
        print(f"tapefit: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = _run(options, config, total)
        code = _finish(options, config, result, started)
    except Exception as error:  # noqa: BLE001 (report one line; the traceback with --verbose, or in the log)
        if interruption() is not None:  # a stop that the runner re-raised as its own error
            raise interruption() from error
        code, line = _failure(error, verbose)
        print(line, file=sys.stderr)
    _release(state)  # (a stop releases it in _stop, after putting back what it must)
    return code


def _release(state: dict) -> None:
    """End the run's lease: its staging folder, whatever is left in it, goes."""
    lease = state.pop("lease", None)
    if lease is not None:
        try:
            lease.release()
        except Exception as error:  # noqa: BLE001 (the run's outcome stands; the next run sweeps up)
            logging.warning("could not remove this run's staging folder: %s", error)


def _failure(error: Exception, verbose: bool) -> tuple[int, str]:
    """The exit status and the one last line for a run that failed with ``error``."""
    import traceback

    from pipeline.config.errors import one_line
    from pipeline.table.locks import BUSY

    text = str(error)
    if verbose:
        logging.exception("the pipeline failed")
        log = None
    else:
        log = write_to_log("".join(traceback.format_exception(error)))
    where = f" (traceback in {log})" if log else ""
    if BUSY in text:
        return EXIT_BUSY, f"tapefit: error: {one_line(text[text.index(BUSY) :].splitlines()[0], 400)}"
    died = _WORKER_DIED.search(text) or _WORKER_DIED.search(_read(log_file()))
    if died:
        return EXIT_FAILED, f"tapefit: error: the job failed: {_worker_death(died)}; nothing was committed{where}"
    return EXIT_FAILED, f"tapefit: error: the job failed: {one_line(_cause(text) or error, 400)}{where}"


# The last line of a traceback that a worker sent back as the error's text: "Error: why".
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?([A-Za-z_]\w*(?:Error|Exception)): (.+)$", re.M)


def _cause(text: str) -> str | None:
    """A multi-process runner's error is the worker's whole traceback: keep its exception line."""
    if "Traceback (most recent call last):" not in text:
        return None
    found = _EXCEPTION_LINE.findall(text)
    return f"{found[-1][1]}" if found else None


def _read(path: str | None) -> str:
    if not path:
        return ""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def _worker_death(found: re.Match) -> str:
    if found.group(1) is None:
        return "a worker process died (its connection to the runner closed)"
    return describe_exit(int(found.group(1)))


def _stop(stop: Interrupted, state: dict) -> str:
    """After a stop or a dead worker: stop the workers, put back what a half-done commit moved, release the lease."""
    from pipeline.table.cleanup import restore_parked
    from pipeline.table.commit import read_manifest

    divert_everything()
    stop_descendants()
    config = state.get("config")
    committed = False
    if config is not None and state.get("lease") is not None:
        try:
            if not _is_remote(config.output):
                restore_parked(config, config.run_id)  # a worker stopped between the two renames
            committed = read_manifest(config).get("run_id") == config.run_id
        except Exception:  # noqa: BLE001 (no partition yet, or unreadable: not ours either way)
            committed = False
    _release(state)
    if not isinstance(stop, Stopped):  # a worker died
        log = log_file()
        where = f" (traceback in {log})" if log else ""
        if committed:
            return f"tapefit: error: {stop.args[0]} after the commit; the partition holds this run's output{where}"
        return f"tapefit: error: the job failed: {stop.args[0]}; nothing was committed{where}"
    name = stop.args[0]
    if config is None:
        return f"tapefit: stopped by {name} before the run started; nothing was written"
    partition = f"run_date={config.run_date}"
    if committed:
        return f"tapefit: stopped by {name} after the commit: {partition} holds this run's complete output"
    return f"tapefit: stopped by {name}: nothing was committed; the previous {partition} is unchanged"


def console_main() -> None:
    """Entry point of the ``tapefit`` console command (``tapefit report ...`` runs :mod:`jobs.report`)."""
    if sys.argv[1:2] == ["report"]:
        from jobs import report

        sys.exit(report.main(sys.argv[2:]))
    code = main()
    # Everything is written and released: leave without the interpreter's shutdown (0.4-0.6 s
    # of module teardown), and without waiting on a runner's threads after a stop.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console_main()
