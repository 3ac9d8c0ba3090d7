"""The launcher's verdicts and summaries, without running a pipeline."""

from __future__ import annotations

import datetime as dt

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from jobs.summary import bigquery_manifest, summary, too_many_failed
from pipeline.config.options import config_from_options


def _counts(ok: int, failed: int, diverged: int = 0) -> dict:
    return {"datasets": ok + failed + diverged, "ok": ok, "not_converged": 0, "diverged": diverged, "failed": failed}


@pytest.mark.parametrize(
    ("counts", "limit", "bad"),
    [
        (_counts(50, 8), 1.0, False),
        (_counts(50, 8), 0.2, False),
        (_counts(50, 8), 0.1, True),
        (_counts(9, 0, 1), 0.1, False),  # exactly the limit is fine: "more than F" fails
        (_counts(9, 0, 2), 0.1, True),  # diverged counts too
        (_counts(10, 0), 0.0, False),
        (_counts(9, 1), 0.0, True),
    ],
)
def test_too_many_failed(counts: dict, limit: float, bad: bool) -> None:
    assert (too_many_failed(counts, limit) is not None) is bad


def test_reason_is_one_line() -> None:
    reason = too_many_failed(_counts(50, 8), 0.1)
    assert reason == (
        "8 of 58 datasets failed or diverged (13.8%), more than --max_failed_fraction 0.1; the table was written"
    )


def test_bigquery_summary_from_metrics() -> None:
    now = dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)
    config = config_from_options(
        PipelineOptions(["--input", "gs://b/in", "--output", "bigquery:p-roject:ds.fits", "--run_date", "2026-01-02"]),
        now=now,
    )
    metrics = {
        "counters": {"datasets_ok": 3, "datasets_failed": 1, "rows_used": 30, "rows_dropped": 2, "rows_read": 32},
        "distributions": {"steps": {"count": 3, "sum": 381, "min": 127, "max": 127, "mean": 127.0}},
    }
    manifest = bigquery_manifest(config, metrics)
    assert manifest["counts"]["datasets"] == 4
    text = summary(manifest, 1.0, metrics)
    assert "tapefit: 4 datasets in 1.0 s — ok 3 · not_converged 0 · diverged 0 · failed 1" in text
    assert f"written to bigquery:p-roject:ds.fits$20260102 (run {config.run_id})" in text
    assert "steps per fit: min 127" in text


def test_skipped_files_and_null_keys_are_named() -> None:
    manifest = {
        "run_id": "r",
        "partition": "out/run_date=2026-01-02",
        "files": ["part-0.parquet"],
        "counts": {"datasets": 2, **_counts(2, 0)},
        "rows": {"used": 20, "dropped": 0, "null_key": 10},
        "skipped": [
            {"path": "in/gone.parquet", "reason": "dangling symbolic link"},
            {"path": "in/new\nline.parquet", "reason": "dangling symbolic link"},
            {"path": "in/real/loop", "reason": "symbolic link loop (it leads back to a folder above it)"},
            {"path": "in/z.parquet", "reason": "cannot be read: Permission denied"},
        ],
    }
    lines = summary(manifest, 1.0).splitlines()
    assert lines[1] == "  rows used 20 · dropped (null/NaN/inf) 0 · null key 10"
    assert lines[2] == (
        "  skipped 4 input file(s) that cannot be read: in/gone.parquet (dangling symbolic link), "
        "in/new\\nline.parquet (dangling symbolic link), in/real/loop (symbolic link loop (it leads back to a "
        "folder above it)), … (1 more in the manifest)"
    )
    assert len(lines) == 4
