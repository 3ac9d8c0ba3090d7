"""The nightly Airflow DAG, parsed by a real Airflow in its own environment.

Airflow cannot share tapefit's environment (its pins clash with Beam's), so this test
runs a separate interpreter: ``TAPEFIT_AIRFLOW_PYTHON``, else ``.venv-airflow/bin/python``
(``make airflow`` creates it; ``.ci/run`` does so before the tests). That interpreter
imports ``jobs/airflow_dag.py`` as Airflow's DAG processor would and prints what the
task will run; tapefit then runs with exactly those arguments.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.jobs.test_fit_lines import DATE, read_rows, run_job

AIRFLOW_PYTHON = Path(os.environ.get("TAPEFIT_AIRFLOW_PYTHON", ROOT / ".venv-airflow" / "bin" / "python"))

PROBE = """
import importlib.util, json, sys
from airflow.providers.apache.beam.hooks.beam import beam_options_to_args

spec = importlib.util.spec_from_file_location("tapefit_airflow_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
dag = module.dag
task = dag.get_task("fit_lines")
options = {**task.pipeline_options, "run_date": task.pipeline_options["run_date"].replace("{{ ds }}", sys.argv[2])}
options["labels"] = {"airflow-version": "v3"}  # what the operator adds when it runs
print(json.dumps({
    "dag_id": dag.dag_id,
    "schedule": str(getattr(dag, "schedule", None) or dag.timetable.summary),
    "catchup": dag.catchup,
    "task_ids": sorted(dag.task_ids),
    "operator": type(task).__name__,
    "retries": task.retries,
    "runner": task.runner,
    "command": [task.py_interpreter, *task.py_options, task.py_file],
    "pipeline_options": task.pipeline_options,
    "dataflow_config": task.dataflow_config,
    "args": beam_options_to_args(options),
    "imported_tapefit_or_beam": sorted(
        m for m in sys.modules if m.split(".")[0] in ("apache_beam", "pipeline", "jobs")
    ),
}))
"""


def _probe(tmp_path: Path, **env: str) -> dict:
    if not AIRFLOW_PYTHON.exists():
        pytest.skip(f"no Airflow environment at {AIRFLOW_PYTHON}: run `make airflow` or set TAPEFIT_AIRFLOW_PYTHON")
    done = subprocess.run(
        [str(AIRFLOW_PYTHON), "-c", PROBE, str(ROOT / "jobs" / "airflow_dag.py"), DATE],
        cwd=tmp_path,
        env={**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_dag_runs_tapefit_nightly_on_direct_runner(tmp_path: Path) -> None:
    table = tmp_path / "table"
    found = _probe(
        tmp_path, TAPEFIT_INPUT=str(ROOT / "sample_data" / "{run_date:%Y}" / "files"), TAPEFIT_OUTPUT=str(table)
    )
    assert found["dag_id"] == "tapefit_nightly" and found["task_ids"] == ["fit_lines"]
    assert found["operator"] == "BeamRunPythonPipelineOperator"
    assert found["schedule"] == "15 2 * * *" and found["catchup"] is False
    assert found["retries"] == 2 and found["runner"] == "DirectRunner"
    assert found["command"][1:] == ["-m", "jobs.fit_lines"]
    assert found["pipeline_options"]["run_date"] == "{{ ds }}"  # the DAG run's logical date
    assert found["imported_tapefit_or_beam"] == []  # parsing the DAG stays light
    args = found["args"]
    assert f"--run_date={DATE}" in args and "--max_failed_fraction=0.2" in args
    # The job accepts exactly what the operator will pass (sample_data/2026/files does not exist:
    # point the template at the real folder to run it).
    args = [a.replace("sample_data/{run_date:%Y}/files", "sample_data/files") for a in args]
    done = run_job(*args)
    assert done.returncode == 0, done.stderr
    assert len(read_rows(table)) == 58


def test_dag_switches_to_dataflow(tmp_path: Path) -> None:
    found = _probe(
        tmp_path,
        TAPEFIT_RUNNER="DataflowRunner",
        TAPEFIT_INPUT="gs://bucket/drops/{run_date}",
        TAPEFIT_OUTPUT="bigquery:proj-1:fits.lines",
        TAPEFIT_PROJECT="proj-1",
        TAPEFIT_REGION="europe-west4",
        TAPEFIT_TEMP_LOCATION="gs://bucket/tmp",
        TAPEFIT_SDK_CONTAINER_IMAGE="europe-docker.pkg.dev/proj-1/images/tapefit:0.1.0",
    )
    assert found["runner"] == "DataflowRunner"
    options = found["pipeline_options"]
    assert options["temp_location"] == "gs://bucket/tmp" and "setup_file" not in options
    assert options["sdk_container_image"] == "europe-docker.pkg.dev/proj-1/images/tapefit:0.1.0"
    assert found["dataflow_config"]["project_id"] == "proj-1"
    assert found["dataflow_config"]["location"] == "europe-west4"
