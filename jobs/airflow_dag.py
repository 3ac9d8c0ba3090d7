"""Airflow DAG ``tapefit_nightly``: fit the day's datasets every night, on DirectRunner or Dataflow.

Copy (or symlink) this file into the Airflow ``dags/`` folder. It needs Airflow and
``apache-airflow-providers-apache-beam`` (plus ``apache-airflow-providers-google`` for
``TAPEFIT_RUNNER=DataflowRunner``, which the provider uses to follow the Dataflow job);
it never imports tapefit or Beam when Airflow parses it. The job itself runs as
``TAPEFIT_PYTHON -m jobs.fit_lines ...``, so install tapefit into that interpreter's
environment (``pip install 'tapefit[gcp]'``).

Settings come from environment variables of the Airflow scheduler and workers:

======================================  ==============================================================
``TAPEFIT_INPUT``                       input pattern, may hold ``{run_date}`` (required)
``TAPEFIT_OUTPUT``                      table directory or ``bigquery:PROJECT:DATASET.TABLE`` (required)
``TAPEFIT_RUNNER``                      ``DirectRunner`` (default) or ``DataflowRunner``
``TAPEFIT_PYTHON``                      interpreter with tapefit installed (default ``python3``)
``TAPEFIT_SCHEDULE``                    cron expression (default ``15 2 * * *``, 02:15 UTC)
``TAPEFIT_MAX_FAILED_FRACTION``         passed to ``--max_failed_fraction`` (default ``0.2``)
``TAPEFIT_PROJECT``, ``TAPEFIT_REGION``  Dataflow project and region
``TAPEFIT_TEMP_LOCATION``               ``gs://`` folder for Dataflow's temporary and staging files
``TAPEFIT_SETUP_FILE``                  tapefit's ``setup.py`` to ship to workers, or
``TAPEFIT_SDK_CONTAINER_IMAGE``         a worker image built from the repository's Dockerfile
======================================  ==============================================================

``--run_date`` is the DAG run's logical date (``{{ ds }}``), so a retry or a backfill
of a date rewrites exactly that date's partition.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping

from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

__all__ = ["DAG_ID", "dag", "dataflow_config", "tapefit_pipeline_options"]

DAG_ID = "tapefit_nightly"
RUNNERS = ("DirectRunner", "DataflowRunner")


def tapefit_pipeline_options(env: Mapping[str, str]) -> dict:
    """The job's flags (without the ``--``) for the runner that ``env`` selects.

    Args:
        env: The ``TAPEFIT_*`` settings (normally ``os.environ``).

    Returns:
        Options for ``BeamRunPythonPipelineOperator``; ``run_date`` is an Airflow template.

    Raises:
        ValueError: for an unknown runner.
    """
    runner = env.get("TAPEFIT_RUNNER", "DirectRunner")
    if runner not in RUNNERS:
        raise ValueError(f"TAPEFIT_RUNNER must be one of {', '.join(RUNNERS)}, got {runner!r}")
    options = {
        "input": env.get("TAPEFIT_INPUT", "/data/datasets/{run_date}"),
        "output": env.get("TAPEFIT_OUTPUT", "/data/fits"),
        "run_date": "{{ ds }}",
        "max_failed_fraction": env.get("TAPEFIT_MAX_FAILED_FRACTION", "0.2"),
    }
    if runner == "DataflowRunner":
        options["temp_location"] = env.get("TAPEFIT_TEMP_LOCATION", "gs://BUCKET/tmp")
        if env.get("TAPEFIT_SDK_CONTAINER_IMAGE"):
            options["sdk_container_image"] = env["TAPEFIT_SDK_CONTAINER_IMAGE"]
        else:
            options["setup_file"] = env.get("TAPEFIT_SETUP_FILE", "/opt/tapefit/setup.py")
    else:
        options["progress_interval"] = "60"
    return options


def dataflow_config(env: Mapping[str, str]) -> dict | None:
    """Dataflow job settings for the operator, or ``None`` on DirectRunner."""
    if env.get("TAPEFIT_RUNNER", "DirectRunner") != "DataflowRunner":
        return None
    return {
        "job_name": "tapefit-nightly",
        "project_id": env.get("TAPEFIT_PROJECT"),
        "location": env.get("TAPEFIT_REGION", "europe-west1"),
        "wait_until_finished": True,
    }


with DAG(
    dag_id=DAG_ID,
    description="Fit y = w·x + b to every dataset of the day's drop (tapefit)",
    schedule=os.environ.get("TAPEFIT_SCHEDULE", "15 2 * * *"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": 2,
        "retry_delay": dt.timedelta(minutes=10),
        "retry_exponential_backoff": True,
        "execution_timeout": dt.timedelta(hours=6),
    },
    tags=["tapefit"],
) as dag:
    BeamRunPythonPipelineOperator(
        task_id="fit_lines",
        runner=os.environ.get("TAPEFIT_RUNNER", "DirectRunner"),
        py_file="jobs.fit_lines",
        py_options=["-m"],
        py_interpreter=os.environ.get("TAPEFIT_PYTHON", "python3"),
        pipeline_options=tapefit_pipeline_options(os.environ),
        dataflow_config=dataflow_config(os.environ),
    )
