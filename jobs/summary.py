"""What the launcher prints after a run: the summary, a dry run's job, the failure-share verdict.

Plain functions over the manifest (or, for BigQuery output, the run's metrics), so
they are tested without running a pipeline. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json

from apache_beam.io.filesystems import FileSystems

from pipeline.config.output import parse_bigquery_output
from pipeline.config.settings import JobConfig
from pipeline.observe.metrics import counts_from_metrics, format_metrics

__all__ = ["bigquery_manifest", "dry_run_report", "summary", "too_many_failed"]


def summary(manifest: dict, seconds: float, metrics: dict | None = None) -> str:
    """The lines printed after a successful run.

    Args:
        manifest: The committed manifest (or :func:`bigquery_manifest`'s stand-in).
        seconds: Wall time of the whole command.
        metrics: The run's metrics (:func:`pipeline.observe.metrics.collect_metrics`), if reported.

    Returns:
        The summary, several lines without a final newline.
    """
    counts, rows = manifest["counts"], manifest["rows"]
    statuses = " · ".join(f"{name} {counts[name]}" for name in ("ok", "not_converged", "diverged", "failed"))
    if counts.get("reused"):
        statuses += f" (reused unchanged: {counts['reused']})"
    files = manifest.get("files")
    where = f"{len(files)} file(s), run {manifest['run_id']}" if files is not None else f"run {manifest['run_id']}"
    lines = [
        f"tapefit: {counts['datasets']} datasets in {seconds:.1f} s — {statuses}",
        f"  rows used {rows['used']:,} · dropped (null/NaN/inf) {rows['dropped']:,}"
        + (f" · null key {rows['null_key']:,}" if rows.get("null_key") else ""),
        f"  written to {manifest['partition']} ({where})",
    ]
    skipped = manifest.get("skipped") or []
    if skipped:
        named = ", ".join(f"{_printable(s['path'])} ({s['reason']})" for s in skipped[:3])
        more = f", … ({len(skipped) - 3:,} more in the manifest)" if len(skipped) > 3 else ""
        lines.insert(2, f"  skipped {len(skipped):,} input file(s) that cannot be read: {named}{more}")
    return "\n".join(lines + (format_metrics(metrics) if metrics else []))


def _printable(text: str) -> str:
    """``text`` on one line: control characters (a newline in a file name) written as escapes."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def bigquery_manifest(config: JobConfig, metrics: dict) -> dict:
    """A manifest-shaped record of a BigQuery run, from its metrics (BigQuery has no manifest file)."""
    counters = metrics["counters"]
    return {
        "run_id": config.run_id,
        "run_date": config.run_date,
        "partition": "bigquery:" + parse_bigquery_output(config.output).partition(config.run_date),
        "counts": counts_from_metrics(metrics),
        "rows": {
            "used": counters.get("rows_used", 0),
            "dropped": counters.get("rows_dropped", 0),
            "null_key": counters.get("null_key_rows", 0),
        },
        "files": None,
    }


def too_many_failed(counts: dict, limit: float) -> str | None:
    """The one-line reason to exit 3, or ``None`` when the failure share is within ``limit``.

    Args:
        counts: Datasets in total (``datasets``) and per status.
        limit: ``--max_failed_fraction``: the largest acceptable share of failed or diverged datasets.
    """
    bad, total = counts["failed"] + counts["diverged"], counts["datasets"]
    if not total or bad / total <= limit:
        return None
    return (
        f"{bad} of {total} datasets failed or diverged ({bad / total:.1%}), more than "
        f"--max_failed_fraction {limit:g}; the table was written"
    )


def dry_run_report(result: object, job_file: str | None) -> str:
    """Describe a Dataflow dry run's job, and write its JSON to ``job_file`` if given.

    Beam's ``--dry_run`` builds the Dataflow job (``result.job``) and submits nothing;
    Beam itself does not write ``--dataflow_job_file`` then, so this does: a JSON object
    with ``job`` (the job request as built so far), ``pipeline`` (the portable pipeline
    graph: every step, the worker environment's container image and staged packages)
    and ``options`` (the pipeline options that differ from Beam's defaults).

    Args:
        result: What ``Pipeline.run()`` returned under ``--dry_run``.
        job_file: Where to write the job's JSON (any Beam filesystem path), or ``None``.

    Returns:
        One line for the user.
    """
    job = getattr(result, "job", None)
    if job is None:
        return "tapefit: dry run: the pipeline was built; this runner exposes no job to show"
    from google.protobuf import json_format

    transforms = job.proto_pipeline.components.transforms
    text = json.dumps(
        {
            "job": json.loads(job.json()),
            "pipeline": json.loads(json_format.MessageToJson(job.proto_pipeline)),
            "options": job.options.get_all_options(drop_default=True, retain_unknown_options=True),
        },
        indent=1,
        sort_keys=True,
        default=str,
    )
    line = f"tapefit: dry run: Dataflow job {job.proto.name!r} built ({len(transforms)} steps), not submitted"
    if job_file:
        handle = FileSystems.create(job_file, mime_type="application/json")
        try:
            handle.write(text.encode("utf-8"))
        finally:
            handle.close()
        line += f"; written to {job_file}"
    return line
