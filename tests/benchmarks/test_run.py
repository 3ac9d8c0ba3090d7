"""`python -m benchmarks.run --quick` as a real subprocess, so the harness never rots.

Nothing here is timed: the numbers are checked for shape and agreement, never for speed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

WORKLOADS = ("S", "K", "ONE")  # file and column layouts, and start-up; the directory layout's pieces are in test_parts


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_help():
    result = _run("--help", timeout=60)
    assert result.returncode == 0
    for flag in ("--quick", "--workloads", "--contenders", "--out", "--cache", "--tapefit_args", "--variant"):
        assert flag in result.stdout
    for flag in ("--rowform_rows",):
        assert flag in result.stdout


def test_unknown_workload_is_a_usage_error():
    result = _run("--workloads", "S,X", timeout=60)
    assert result.returncode == 2 and "unknown workload" in result.stderr


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "results.json"
    result = _run(
        "--quick", "--workloads", ",".join(WORKLOADS), "--cache", str(tmp / "cache"), "--out", str(out),
        "--rowform_rows", "100000",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "targets (reported, not asserted)" in result.stdout
    return json.loads(out.read_text())


def test_report_structure(report):
    assert report["mode"] == "quick"
    assert set(report["workloads"]) == set(WORKLOADS)
    machine = report["machine"]
    assert machine["cpus_usable"] >= 1 and machine["python"]
    assert {"apache-beam", "tensorflow", "pyarrow", "duckdb", "numpy"} <= set(machine["versions"])
    assert report["targets"] and all({"target", "value", "limit", "met"} <= set(t) for t in report["targets"])


def test_every_contender_ran_on_every_workload(report):
    names = [c["name"] for c in report["contenders"]]
    assert names[0] == "duckdb" and {"tapefit-mp2", "tapefit-inproc", "pyarrow", "numpy", "eager"} <= set(names)
    rows = {(r["workload"], r["contender"]): r for r in report["results"]}
    assert set(rows) == {(w, c) for w in WORKLOADS for c in names}
    for (workload, contender), row in rows.items():
        if contender == "eager" and not report["workloads"][workload]["eager_sample"]:
            assert row["status"] == "skipped"
            continue
        if contender.endswith("-huber"):  # measured on M only, against the default loss
            assert row["status"] == "skipped"
            continue
        if contender == "import-floor" and workload != "ONE":  # the start-up workload only
            assert row["status"] == "skipped"
            continue
        assert row["status"] == "ok", row
        assert row["wall_s"] > 0 and row["max_rss_mb"] > 0
        assert row["max_rss_mb"] >= row["sampled_max_rss_mb"] - 1  # getrusage saw every process sampling saw
        assert row["missing"] == row["extra"] == row["not_ok"] == row["n_rows_mismatch"] == 0, row


def test_fits_agree_with_duckdb(report):
    for row in report["results"]:
        if row["contender"].startswith("tapefit") or row["contender"] in ("numpy", "eager"):
            if row["status"] == "ok":
                assert row["max_rel_diff_w"] < 1e-6 and row["max_rel_diff_b"] < 1e-6, row
        if row["contender"] == "duckdb":
            assert row["ratio_vs_duckdb"] == 1.0


def test_one_dataset_run_is_compared_with_its_import_floor(report):
    rows = {(r["workload"], r["contender"]): r for r in report["results"]}
    floor, run = rows[("ONE", "import-floor")], rows[("ONE", "tapefit-inproc")]
    assert floor["status"] == run["status"] == "ok"
    assert run["ratio_vs_floor"] == pytest.approx(run["wall_s"] / floor["wall_s"])
    assert [t["contender"] for t in report["targets"] if t["target"] == "wall/import floor"] == ["tapefit-inproc"]


def test_multi_process_workers_are_measured(report):
    row = next(r for r in report["results"] if r["contender"] == "tapefit-mp2")
    assert row["sampled_max_procs"] >= 3  # the launcher and its two DirectRunner workers (plus their shells)


def test_eager_is_timed_per_dataset(report):
    row = next(r for r in report["results"] if r["contender"] == "eager" and r["status"] == "ok")
    assert len(row["seconds_by_dataset"]) == report["workloads"][row["workload"]]["eager_sample"]
    assert set(row["speedup_per_dataset"]) == {"tapefit-mp2", "tapefit-inproc"}


def test_row_form_throughput_is_measured(report):
    probe = report["rowform"]
    names = {"squared", "huber", "squared float32", "huber float32"}
    assert probe["rows"] == 100_000 and set(probe["losses"]) == names and set(probe["floor"]) == {"float64", "float32"}
    for loss in [*probe["losses"].values(), *probe["floor"].values()]:
        assert loss["steps"] > 0 and loss["row_steps_per_s"] > 0
    assert probe["floor"]["float64"]["steps"] == probe["steps"]  # the floor loop runs every step
    assert {t["contender"] for t in report["targets"] if t["target"] == "row-steps/s, one core"} == {
        f"row form {name}" for name in names
    }
