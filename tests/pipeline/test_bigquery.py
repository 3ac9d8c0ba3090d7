"""BigQuery output: the table name, the schema derived from SCHEMA, and row conversion."""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import json
from pathlib import Path

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from jobs.fit_lines import main
from pipeline.config.errors import ConfigError
from pipeline.config.options import config_from_options
from pipeline.config.output import BigQueryTable, is_bigquery, parse_bigquery_output
from pipeline.discover.layout import DatasetRef
from pipeline.discover.listing import Expected
from pipeline.fit import FitResult, Status
from pipeline.table.bigquery import WriteBigQuery, bigquery_schema, load_parameters, to_bigquery_row
from pipeline.table.schema import SCHEMA, failure_row, result_row
from tests import fakeos
from tests.conftest import lstsq, write_parquet

FITTED_AT = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone.utc)
REF = DatasetRef("sensors/a", "in/sensors/a.parquet", ("in/sensors/a.parquet",))


def test_parse_output() -> None:
    assert is_bigquery("bigquery:my-project:fits.lines") and not is_bigquery("gs://b/fits")
    table = parse_bigquery_output("bigquery:my-project:fits.lines")
    assert table == BigQueryTable("my-project", "fits", "lines")
    assert table.partition("2026-01-02") == "my-project:fits.lines$20260102"
    assert parse_bigquery_output("bigquery:example.com:proj:ds_1.t-2").project == "example.com:proj"


@pytest.mark.parametrize(
    "output",
    ["bigquery:fits.lines", "bigquery:my-project:lines", "bigquery:my-project:fits.lines$20260102", "bigquery:"],
)
def test_bad_output_is_one_config_line(output: str) -> None:
    with pytest.raises(ConfigError, match=r"^--output must be bigquery:PROJECT:DATASET\.TABLE"):
        config_from_options(PipelineOptions(["--input", "in", "--output", output]))


def test_schema_follows_the_parquet_schema_plus_run_date() -> None:
    fields = bigquery_schema()["fields"]
    first = SCHEMA.names[: SCHEMA.get_field_index("reused_from") + 1]
    # columns added later come after run_date: an existing table only gains fields at its end
    assert [f["name"] for f in fields] == [*first, "run_date", "w_stderr", "b_stderr", "scale", "n_outliers"]
    by_name = {f["name"]: (f["type"], f["mode"]) for f in fields}
    assert by_name["dataset"] == ("STRING", "REQUIRED")
    assert by_name["w"] == ("FLOAT", "NULLABLE")
    assert by_name["steps"] == ("INTEGER", "REQUIRED")
    assert by_name["converged"] == ("BOOLEAN", "REQUIRED")
    assert by_name["error"] == ("STRING", "NULLABLE")
    assert by_name["fitted_at"] == ("TIMESTAMP", "REQUIRED")
    assert by_name["run_date"] == ("DATE", "REQUIRED")
    for field in SCHEMA:  # nullability carried over one to one
        assert by_name[field.name][1] == ("NULLABLE" if field.nullable else "REQUIRED")


def test_load_parameters() -> None:
    assert load_parameters() == {
        "timePartitioning": {"type": "DAY", "field": "run_date"},
        "clustering": {"fields": ["status", "dataset"]},
        "schemaUpdateOptions": ["ALLOW_FIELD_ADDITION"],  # an existing table gains the new columns
    }


def test_fitted_row_converts_to_json_values() -> None:
    result = FitResult(
        w=2.0, b=-1.5, final_loss=0.01, r2=0.99, steps=127, converged=True, status=Status.OK,
        error=None, n_rows=500, n_dropped=3,
    )  # fmt: skip
    row = to_bigquery_row(result_row(REF, result, "run-1", FITTED_AT), "2026-01-02")
    assert row == {
        "dataset": "sensors/a", "w": 2.0, "b": -1.5, "final_loss": 0.01, "r2": 0.99, "steps": 127,
        "converged": True, "status": "ok", "error": None, "n_rows": 500, "n_dropped": 3,
        "source": "in/sensors/a.parquet", "run_id": "run-1",
        "fitted_at": "2026-01-02 03:04:05.678901 UTC", "reused_from": None, "run_date": "2026-01-02",
        "w_stderr": None, "b_stderr": None, "scale": None, "n_outliers": None,
    }  # fmt: skip
    json.dumps(row, allow_nan=False)  # what Beam's file loads do with it


def test_failed_row_keeps_nulls() -> None:
    row = to_bigquery_row(failure_row(REF, "x is constant", "run-1", FITTED_AT), "2026-01-02")
    assert row["status"] == "failed" and row["error"] == "x is constant"
    assert row["w"] is None and row["b"] is None
    json.dumps(row, allow_nan=False)


def test_non_finite_floats_become_null_and_times_become_utc() -> None:
    result = FitResult(
        w=1.0, b=0.0, final_loss=float("inf"), r2=float("nan"), steps=3, converged=False,
        status=Status.NOT_CONVERGED, error=None, n_rows=2, n_dropped=0,
    )  # fmt: skip
    berlin = dt.timezone(dt.timedelta(hours=1))
    row = to_bigquery_row(result_row(REF, result, "r", FITTED_AT.astimezone(berlin)), "2026-01-02")
    assert row["final_loss"] is None and row["r2"] is None
    assert row["fitted_at"] == "2026-01-02 03:04:05.678901 UTC"
    json.dumps(row, allow_nan=False)


# The stand-in at the WriteToBigQuery boundary: the rows it receives, as one JSON file.


def _dump(rows: list[dict], path: str, table: str) -> None:
    Path(path).write_text(json.dumps({"table": table, "rows": sorted(rows, key=lambda r: r["dataset"])}))


def _json_load(path: Path):  # noqa: ANN202 (a load factory: partition -> PTransform)
    return lambda table: beam.combiners.ToList() | beam.Map(_dump, str(path), table)


def _bigquery_job(monkeypatch: pytest.MonkeyPatch, loaded: Path, *args: str) -> int:
    build = importlib.import_module("pipeline.graph.build")  # the module; pipeline.graph.build is its function
    monkeypatch.setattr(build, "WriteBigQuery", functools.partial(WriteBigQuery, load=_json_load(loaded)))
    return main([*args, "--output", "bigquery:proj-1:fits.lines", "--run_date", "2026-01-02"])


def test_a_run_loads_one_row_per_dataset_into_the_partition(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.linspace(-2.0, 2.0, 50)
    write_parquet(tmp_path / "in/a.parquet", x=x, y=3.0 * x - 1.0)
    write_parquet(tmp_path / "in/b.parquet", x=[1.0, 2.0])  # no y: a failed row, still loaded
    loaded = tmp_path / "loaded.json"
    assert _bigquery_job(monkeypatch, loaded, "--input", str(tmp_path / "in")) == 0
    load = json.loads(loaded.read_text())
    assert load["table"] == "proj-1:fits.lines$20260102"
    a, b = load["rows"]
    assert (a["dataset"], a["status"], a["run_date"]) == ("a", "ok", "2026-01-02")
    assert a["w"] == pytest.approx(lstsq(x, 3.0 * x - 1.0)[0], rel=1e-6)
    assert (b["dataset"], b["status"], b["w"]) == ("b", "failed", None)


def test_a_run_with_no_rows_exits_1_and_loads_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv(fakeos.ROOT_ENV, str(tmp_path / "store"))
    (tmp_path / "store/bucket/empty").mkdir(parents=True)  # a remote input is listed by the workers
    loaded = tmp_path / "loaded.json"
    assert _bigquery_job(monkeypatch, loaded, "--input", "fakeos://bucket/empty") == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("tapefit: error: the job failed: no rows to load into proj-1:fits.lines$20260102")
    assert "nothing was loaded and the partition was left as it was" in lines[0]
    assert not loaded.exists()


def _table(*ids: str) -> pa.Table:
    rows = [failure_row(DatasetRef(i, f"in/{i}.parquet", (f"in/{i}.parquet",)), "bad", "run-1", FITTED_AT) for i in ids]
    return pa.Table.from_pylist(rows, schema=SCHEMA)


@pytest.mark.parametrize(
    ("tables", "problem"),
    [
        ([_table("a"), _table("b", "a")], "duplicated 'a'"),
        ([_table("a")], "missing 'b'"),
        ([_table("a", "b", "c")], "not found by discovery 'c'"),
    ],
)
def test_a_lost_or_duplicated_id_loads_nothing(tmp_path: Path, tables: list[pa.Table], problem: str) -> None:
    config = config_from_options(
        PipelineOptions(["--input", "in", "--output", "bigquery:proj-1:fits.lines", "--run_date", "2026-01-02"])
    )
    loaded = tmp_path / "loaded.json"
    with pytest.raises(Exception, match=problem) as raised:  # noqa: PT011 (Beam may wrap the RuntimeError)
        with beam.Pipeline() as p:
            results = {
                "tables": p | "Tables" >> beam.Create(tables),
                "expected": p | "Expected" >> beam.Create([Expected(("a", "b"))]),
            }
            results | WriteBigQuery(config, load=_json_load(loaded))
    assert "nothing was loaded and the partition was left as it was" in str(raised.value)
    assert not loaded.exists()
