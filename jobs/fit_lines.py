"""tapefit's main job: fit y = w·x + b to every Parquet dataset of an input.

Usage::

    python -m jobs.fit_lines --input PATTERN --output TABLE_DIR [--run_date YYYY-MM-DD]
                             [options] [any Beam pipeline options]

This launcher only parses and validates options, checks the input and output, runs
the pipeline built by :func:`pipeline.build.build` and prints a summary. Exit status:
0 on success, 2 for a usage problem (bad option, no input files, unwritable output),
1 when the pipeline itself fails. TensorFlow is never imported here.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

__all__ = ["console_main", "main"]

USAGE = (
    "python -m jobs.fit_lines --input PATTERN --output TABLE_DIR [--run_date YYYY-MM-DD] "
    "[options] [any Beam pipeline options]"
)
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with the command line, input or output; one line for the user."""


class _StrictParser(argparse.ArgumentParser):
    """An argparse parser that raises instead of printing usage and exiting."""

    def error(self, message: str) -> None:
        raise UsageError(message)

    def add_value_provider_argument(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        """Accept Beam's templated flags as plain ones (only their names matter here)."""
        self.add_argument(*args, **kwargs)


def _quiet_logging() -> None:
    """Keep the console for tapefit's own output: warnings and up, minus known noise."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # same numbers on every CPU, less noise
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(lambda record: "apitools not found" not in record.getMessage())


def _help() -> str:
    from pipeline.options import TapefitOptions

    parser = argparse.ArgumentParser(prog="tapefit", usage=USAGE, add_help=False)
    TapefitOptions._add_argparse_args(parser)  # noqa: SLF001 (Beam's own extension point)
    return parser.format_help() + (
        "\nAny Beam pipeline option may follow, e.g. --runner DataflowRunner, "
        "--direct_running_mode multi_processing --direct_num_workers 2, --temp_location gs://...\n"
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


def _local_worker_defaults(argv: list[str]) -> list[str]:
    """Keep DirectRunner's worker processes as quiet as the launcher (users may override)."""
    given = " ".join(argv)
    local = "--runner" not in given or any(f"--runner{sep}DirectRunner" in given for sep in ("=", " "))
    if local and "--default_sdk_harness_log_level" not in given:
        return [*argv, "--default_sdk_harness_log_level=ERROR"]
    return argv


def _prepare(argv: list[str]):  # noqa: ANN202 (returns Beam options and JobConfig)
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.datasets import input_layout, list_dataset_files
    from pipeline.options import ConfigError, config_from_options
    from pipeline.reading import one_line
    from pipeline.write import check_output_writable

    _check_flags(argv)
    options = PipelineOptions(_local_worker_defaults(argv))
    try:
        config = config_from_options(options)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    try:
        files = list_dataset_files(input_layout(config.input, config.output))
    except Exception as error:  # noqa: BLE001 (any listing failure is a usage problem here)
        raise UsageError(f"cannot list input {config.input}: {one_line(error, 400)}") from None
    if not files:
        raise UsageError(f"input matched no Parquet file: {config.input}")
    try:
        check_output_writable(config)
    except Exception as error:  # noqa: BLE001
        raise UsageError(f"cannot write output {config.output}: {one_line(error, 400)}") from None
    return options, config


def _summary(manifest: dict, seconds: float) -> str:
    counts, rows = manifest["counts"], manifest["rows"]
    statuses = " · ".join(f"{name} {counts[name]}" for name in ("ok", "not_converged", "diverged", "failed"))
    if counts.get("reused"):
        statuses += f" (reused unchanged: {counts['reused']})"
    lines = [
        f"tapefit: {counts['datasets']} datasets in {seconds:.1f} s — {statuses}",
        f"  rows used {rows['used']:,} · dropped (null/NaN/inf) {rows['dropped']:,}"
        + (f" · null key {rows['null_key']:,}" if rows.get("null_key") else ""),
        f"  written to {manifest['partition']} ({len(manifest['files'])} file(s), run {manifest['run_id']})",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the job with command-line ``argv``; return the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _quiet_logging()
    if not argv or "-h" in argv or "--help" in argv:
        print(_help(), end="")
        return EXIT_OK if argv else EXIT_USAGE
    started = time.monotonic()
    try:
        options, config = _prepare(argv)
    except UsageError as error:
        print(f"tapefit: error: {error}", file=sys.stderr)
        return EXIT_USAGE

    import apache_beam as beam

    from pipeline.build import build
    from pipeline.reading import one_line
    from pipeline.write import read_manifest

    try:
        with beam.Pipeline(options=options) as p:
            build(p, config)
        manifest = read_manifest(config)
    except Exception as error:  # noqa: BLE001 (report one line; details at debug level)
        logging.debug("pipeline failed", exc_info=True)
        print(f"tapefit: error: the job failed: {one_line(error, 400)}", file=sys.stderr)
        return EXIT_FAILED
    print(_summary(manifest, time.monotonic() - started))
    return EXIT_OK


def console_main() -> None:
    """Entry point of the ``tapefit`` console command (``tapefit report ...`` runs :mod:`jobs.report`)."""
    if sys.argv[1:2] == ["report"]:
        from jobs import report

        sys.exit(report.main(sys.argv[2:]))
    sys.exit(main())


if __name__ == "__main__":
    console_main()
