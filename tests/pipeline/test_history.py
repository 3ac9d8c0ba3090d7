"""The table's history read through Beam's FileSystems on an object store: the manifest decides."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.io.filesystems import FileSystems

from pipeline.config.settings import FitConfig, JobConfig
from pipeline.discover.fingerprints import settings_key
from pipeline.discover.layout import DatasetRef
from pipeline.fit import FitResult, Status
from pipeline.table.history import (
    FINGERPRINTS,
    ForeignPartitionError,
    load_previous,
    read_partition,
    warm_starts,
    write_fingerprints,
)
from pipeline.table.schema import SCHEMA, result_row
from tests import fakeos
from tests.pipeline.test_options import NOW

TABLE = "fakeos://bucket/table"


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv(fakeos.ROOT_ENV, str(tmp_path))


def _config(run_date: str, **changes: object) -> JobConfig:
    fields = {
        "input": "in", "output": TABLE, "run_date": run_date, "group_by": "file", "key_column": None,
        "x_column": "x", "y_column": "y", "fit": FitConfig(), "run_id": "now", "started_at": NOW,
    }  # fmt: skip
    return JobConfig(**{**fields, **changes})


def _put(url: str, data: bytes) -> None:
    handle = FileSystems.create(url)
    handle.write(data)
    handle.close()


def _rows(ws: dict[str, float], run_id: str) -> bytes:
    rows = [
        result_row(DatasetRef(name, f"in/{name}.parquet", ()), FitResult(Status.OK, w=w, b=1.0), run_id, NOW)
        for name, w in ws.items()
    ]
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), buffer)
    return buffer.getvalue()


def _partition(date: str, files: dict[str, dict[str, float]], manifest: dict | None) -> str:
    folder = f"{TABLE}/run_date={date}"
    for name, ws in files.items():
        _put(f"{folder}/{name}", _rows(ws, name))
    if manifest is not None:
        _put(f"{folder}/_manifest.json", json.dumps(manifest).encode())
    return folder


def test_only_the_files_the_manifest_lists_are_read(tmp_path) -> None:  # noqa: ANN001
    # mid-commit on an object store: the new run's files are in, the old run's not yet deleted
    old, new = {"part-old-0.parquet": {"a": 1.0, "b": 2.0}}, {"part-new-0.parquet": {"a": 3.0, "b": 4.0}}
    folder = _partition("2026-01-01", {**old, **new}, {"files": ["part-old-0.parquet"]})
    write_fingerprints(folder, {"a": "fa", "b": "fb"}, settings_key(_config("2026-01-01")))
    _partition("2026-01-02", new, None)  # no manifest: not committed, not looked at

    previous = load_previous(_config("2026-01-02"))

    assert previous.run_date == "2026-01-01"
    assert dict(zip(*(previous.rows.column(c).to_pylist() for c in ("dataset", "w")), strict=True)) == {
        "a": 1.0, "b": 2.0,
    }  # fmt: skip
    assert previous.fingerprints == {"a": "fa", "b": "fb"}
    assert previous.settings == settings_key(_config("2026-01-01"))


def test_the_fingerprints_file_the_manifest_names_is_read(tmp_path) -> None:  # noqa: ANN001
    files = {"part-r2-0.parquet": {"a": 3.0}}
    folder = _partition("2026-01-01", files, {"files": list(files), "fingerprints": "_fingerprints-r2.arrow"})
    write_fingerprints(folder, {"a": "old"})  # the previous run's, not yet deleted
    write_fingerprints(f"{TABLE}/scratch", {"a": "new"}, "key-r2")
    FileSystems.rename([f"{TABLE}/scratch/{FINGERPRINTS}"], [f"{folder}/_fingerprints-r2.arrow"])

    run = read_partition(TABLE, "2026-01-01")

    assert (run.fingerprints, run.settings) == ({"a": "new"}, "key-r2")


def test_a_listed_file_that_is_missing_is_named(tmp_path) -> None:  # noqa: ANN001
    folder = _partition("2026-01-01", {"part-0.parquet": {"a": 1.0}}, {"files": ["part-0.parquet", "part-1.parquet"]})
    with pytest.raises(ForeignPartitionError) as raised:
        load_previous(_config("2026-01-01"))
    assert str(raised.value) == (
        f"the previous partition's file {folder}/part-1.parquet is missing, though its _manifest.json lists it; "
        "rerun that date or move the partition out of the table"
    )
    _partition("2026-01-02", {"part-0.parquet": {"a": 1.0}}, {"files": ["part-0.parquet"], "fingerprints": "_f.arrow"})
    with pytest.raises(ForeignPartitionError, match=r"run_date=2026-01-02/_f.arrow is missing"):
        read_partition(TABLE, "2026-01-02")
    _put(f"{TABLE}/run_date=2026-01-02/_f.arrow", b"not Arrow")
    with pytest.raises(ForeignPartitionError, match=r"_f.arrow is not a tapefit fingerprints file \("):
        read_partition(TABLE, "2026-01-02")


def test_warm_starts_come_from_before_the_run_date_under_the_same_settings(tmp_path) -> None:  # noqa: ANN001
    for date, w in (("2026-01-01", 1.0), ("2026-01-02", 2.0), ("2026-01-03", 3.0)):
        folder = _partition(date, {"part-0.parquet": {"a": w}}, {"files": ["part-0.parquet"]})
        write_fingerprints(folder, {"a": "f"}, settings_key(_config(date)) if date != "2026-01-02" else None)

    assert warm_starts(_config("2026-01-02")) == {"a": (1.0, 1.0)}  # not its own partition
    assert warm_starts(_config("2026-01-04")) == {"a": (3.0, 1.0)}
    assert warm_starts(_config("2026-01-03")) == {}  # 2026-01-02 recorded no settings: cold
    assert warm_starts(_config("2026-01-02", fit=FitConfig(intercept=False))) == {}
    assert warm_starts(_config("2026-01-02", x_column="z")) == {}
    assert warm_starts(_config("2026-01-01")) == {}
    rerun = load_previous(_config("2026-01-02", warm_start=True))
    assert rerun.run_date == "2026-01-02" and rerun.starts() == {"a": (1.0, 1.0)}  # reuse: its own; starts: before
    assert load_previous(_config("2026-01-02")).starts() == {}  # without --warm_start


def test_the_settings_key_holds_the_version_and_what_decides_the_fit() -> None:
    key = json.loads(settings_key(_config("2026-01-01", key_column="k", group_by="column", warm_start=True)))
    assert key == {
        "tapefit": "0.2.0", "x_column": "x", "y_column": "y", "group_by": "column:k",
        "fit": {
            "learning_rate": 0.1, "max_steps": 1000, "tolerance": 0.0, "standardize": True, "dtype": "float64",
            "loss": "squared", "huber_epsilon": 1.35, "intercept": True, "weights": None, "loss_form": "gram",
        },
    }  # fmt: skip
    same = _config("2026-01-09", input="other", run_id="x", batch_size=3, incremental=True, max_rows_in_memory=9)
    assert settings_key(same) == settings_key(_config("2026-01-01"))
    assert settings_key(_config("2026-01-01"), version="0.1.9") != settings_key(_config("2026-01-01"))
