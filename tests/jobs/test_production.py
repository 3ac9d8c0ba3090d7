"""Production runs end to end.

The failure-share exit, progress and metrics, ``{run_date}`` inputs, and a Dataflow job
built in a dry run that contacts nothing.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, write_parquet
from tests.jobs.test_fit_lines import DATE, read_rows, run_job

SAMPLE = ROOT / "sample_data" / "files"  # 58 datasets, 8 of them broken


def test_too_many_failures_exit_3_after_writing_with_progress_and_metrics(tmp_path: Path) -> None:
    table = tmp_path / "table"
    done = run_job(
        "--input", str(SAMPLE), "--output", str(table), "--run_date", DATE,
        "--max_failed_fraction", "0.1", "--progress_interval", "0.5",
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "tapefit: 58 datasets" in done.stdout and "failed 8" in done.stdout
    assert "steps per fit: min 160" in done.stdout and "fit time per dataset" in done.stdout  # to machine precision
    errors = [line for line in done.stderr.splitlines() if line.startswith("tapefit: error:")]
    assert errors == [
        "tapefit: error: 8 of 58 datasets failed or diverged (13.8%), more than --max_failed_fraction 0.1; "
        "the table was written"
    ]
    assert "Traceback" not in done.stderr
    assert any(line.startswith("tapefit: progress ") and "/58 datasets" in line for line in done.stderr.splitlines())
    assert len(read_rows(table)) == 58  # the table is still written
    manifest = json.loads((table / f"run_date={DATE}" / "_manifest.json").read_text())
    counters, dists = manifest["metrics"]["counters"], manifest["metrics"]["distributions"]
    assert counters["datasets_ok"] == 50 and counters["datasets_failed"] == 8
    assert counters["rows_read"] >= counters["rows_dropped"] > 0
    assert dists["steps"]["count"] == 50 and dists["fit_us"]["count"] >= 50
    assert manifest["options"]["max_failed_fraction"] == 0.1


def test_within_the_failure_share_exits_0(tmp_path: Path) -> None:
    done = run_job("--input", str(SAMPLE), "--output", str(tmp_path / "t"), "--max_failed_fraction", "0.2")
    assert done.returncode == 0, done.stderr
    assert "tapefit: progress" not in done.stderr  # short runs stay quiet at the default interval


def test_run_date_in_input_reads_the_days_drop_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    for day, slope in (("2026/01/02", 2.0), ("2026/01/03", -1.0)):
        for name in ("a", "sub/b"):
            x = rng.uniform(0, 10, 50)
            write_parquet(tmp_path / "drops" / day / f"{name}.parquet", x=x, y=slope * x + 1)
    table = tmp_path / "table"
    pattern = str(tmp_path / "drops" / "{run_date:%Y/%m/%d}")
    done = run_job("--input", pattern, "--output", str(table), "--run_date", DATE)
    assert done.returncode == 0, done.stderr
    rows = read_rows(table)
    assert [r["dataset"] for r in rows] == ["a", "sub/b"]  # ids relative to the filled-in root
    assert all(abs(r["w"] - 2.0) < 1e-9 for r in rows)
    manifest = json.loads((table / f"run_date={DATE}" / "_manifest.json").read_text())
    assert manifest["input"] == str(tmp_path / "drops" / "2026/01/02")
    assert manifest["options"]["input_template"] == pattern


def test_unknown_placeholder_exits_2_in_one_line(tmp_path: Path) -> None:
    done = run_job("--input", str(tmp_path / "{day}"), "--output", str(tmp_path / "t"))
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "unknown placeholder {day}" in lines[0]


def test_dry_run_needs_dataflow(tmp_path: Path) -> None:
    done = run_job("--input", str(SAMPLE), "--output", str(tmp_path / "t"), "--dry_run")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "--dry_run needs --runner DataflowRunner" in lines[0]
    assert not (tmp_path / "t").exists()


def _gcp_missing() -> str | None:
    try:
        import apache_beam.io.gcp.gcsfilesystem  # noqa: F401
        import google.cloud.bigquery  # noqa: F401
        from apache_beam.runners.dataflow.internal import apiclient  # noqa: F401
    except ImportError as error:
        return f"apache-beam[gcp] is not installed ({error}); pip install -e '.[test]' installs it"
    return None


needs_gcp = pytest.mark.skipif(_gcp_missing() is not None, reason=str(_gcp_missing()))


def _dry_run(tmp_path: Path, *args: str) -> dict:
    """Build a Dataflow job for the sample data with every network route closed; return the job file."""
    job_file = tmp_path / "job.json"
    closed = "http://127.0.0.1:9"  # any contact with Google (or anything else) fails at once
    env = {
        **os.environ,
        "HTTP_PROXY": closed, "HTTPS_PROXY": closed, "http_proxy": closed, "https_proxy": closed,
        "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "no-credentials.json"), "NO_PROXY": "", "no_proxy": "",
    }  # fmt: skip
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs.fit_lines",
            "--run_date",
            DATE,
            *args,
            "--runner",
            "DataflowRunner",
            "--dry_run",
            "--no_auth",
            "--project",
            "tapefit-test",
            "--region",
            "europe-west1",
            "--temp_location",
            "gs://tapefit-test-bucket/tmp",
            "--dataflow_job_file",
            str(job_file),
        ],  # fmt: skip
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "dry run: Dataflow job" in done.stdout and "not submitted" in done.stdout
    assert "Retry" not in done.stderr and "Connecting anonymously" not in done.stderr, done.stderr[-3000:]
    return json.loads(job_file.read_text())


def _labels(job: dict) -> set[str]:
    return {t.get("uniqueName", "") for t in job["pipeline"]["components"]["transforms"].values()}


def _payload_text(job: dict) -> bytes:
    """Every base64 payload of the pipeline (display data, environments), decoded and joined."""
    found = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key.lower().endswith("payload") and isinstance(value, str):
                    found.append(base64.b64decode(value))
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(job["pipeline"])
    return b"\n".join(found)


@needs_gcp
def test_dataflow_dry_run_with_setup_file(tmp_path: Path) -> None:
    job = _dry_run(
        tmp_path,
        "--input", "gs://tapefit-test-bucket/drops/{run_date}", "--output", "gs://tapefit-test-bucket/fits",
        "--setup_file", str(ROOT / "setup.py"),
    )  # fmt: skip
    labels = _labels(job)
    for label in ("DiscoverDatasets/ListBatches", "FitDatasets/Read", "FitDatasets/Fit", "WriteTable/WriteParquet"):
        assert label in labels
    assert "WriteTable/Commit" in labels
    options = job["options"]
    assert options["setup_file"] == str(ROOT / "setup.py") and options["runner"] == "DataflowRunner"
    payloads = _payload_text(job)
    assert b"workflow.tar.gz" in payloads and b"tapefit-" in payloads  # the sdist of setup.py is staged
    assert b"beam_python3.11_sdk:2.77.0" in payloads or b"beam_python3" in payloads
    assert job["job"]["type"] == "JOB_TYPE_BATCH"


@needs_gcp
def test_dataflow_dry_run_to_bigquery_with_custom_image(tmp_path: Path) -> None:
    image = "europe-docker.pkg.dev/tapefit-test/images/tapefit:0.1.0"
    job = _dry_run(
        tmp_path,
        "--input", "gs://tapefit-test-bucket/drops", "--output", "bigquery:tapefit-test:fits.lines",
        "--sdk_container_image", image,
    )  # fmt: skip
    labels = _labels(job)
    assert {"WriteBigQuery/ToBigQueryRows", "WriteBigQuery/LoadPartition"} <= labels
    assert not any(label.startswith("WriteTable") for label in labels)
    assert job["options"]["sdk_container_image"] == image
    payloads = _payload_text(job)
    assert image.encode() in payloads
    assert b"tapefit-test:fits.lines$20260102" in payloads  # the run_date partition decorator
    assert b"WRITE_TRUNCATE" in payloads and b"CREATE_IF_NEEDED" in payloads
    assert b"'timePartitioning': {'type': 'DAY', 'field': 'run_date'}" in payloads


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--dry_run"], ["--dry_run=True"]),
        (["--dry_run", "--no_auth"], ["--dry_run=True", "--no_auth"]),
        (["--dry_run", "true", "--x"], ["--dry_run=True", "--x"]),
        (["--dry_run=False", "--x"], ["--x"]),
        (["--dry_run", "no"], []),
        (["--input", "a"], ["--input", "a"]),
    ],
)
def test_dry_run_flag_stands_alone(argv: list[str], expected: list[str]) -> None:
    from jobs.fit_lines import _dry_run_flag

    assert _dry_run_flag(argv) == expected
