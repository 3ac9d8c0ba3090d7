"""DuckDB's batch reader gives pyarrow's arrays, and leaves every file it cannot vouch for to pyarrow.

Real files, real DuckDB (a test dependency), compared value for value (bits, NaN and
the sign of zero included) with :func:`pipeline.read.parquet.iter_columns`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

import pipeline.read.many_files as many_files
import pipeline.read.parquet as parquet
from pipeline.config.settings import FitConfig, JobConfig
from pipeline.discover.listing import DiscoverDatasets
from pipeline.graph.fit_datasets import FitDatasets
from pipeline.read.parquet import iter_columns
from tests import fakeos
from tests.conftest import write_parquet
from tests.pipeline.test_options import NOW

BIG = 2**53 + 1


def _good(folder: Path) -> list[str]:
    """Files of every plain type, nulls, NaN, ±inf, -0.0 and no rows at all: DuckDB reads them all."""
    rng = np.random.default_rng(7)
    files = {
        "double": {"x": rng.normal(size=50), "y": rng.normal(size=50)},
        "float32": {"x": pa.array(rng.normal(size=9), pa.float32()), "y": pa.array([0.1] * 9, pa.float32())},
        "int64": {"x": pa.array([BIG, BIG + 2, -(2**62), 3], pa.int64()), "y": pa.array([1, 2, 3, 4], pa.int64())},
        "int32": {"x": pa.array([1, None, 3], pa.int32()), "y": [1.5, 2.5, None]},
        "int8": {"x": pa.array([1, 2, -128], pa.int8()), "y": pa.array([7, 8, 9], pa.int16())},
        "odd_values": {"x": [1.0, np.nan, -0.0, np.inf, 5.0], "y": [2.0, 4.0, -np.inf, 8.0, 0.0]},
        "no_rows": {"x": pa.array([], pa.float64()), "y": pa.array([], pa.float64())},
        "extra_columns": {"x": [1.5, 2.5], "y": [3.0, 4.0], "note": ["a", "b"]},
    }
    return [str(write_parquet(folder / f"{name}.parquet", **columns)) for name, columns in files.items()]


def _bad(folder: Path) -> list[str]:
    """Files DuckDB must not read (pyarrow reads or refuses them, with its own reason)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zero.parquet").write_bytes(b"")
    (folder / "corrupt.parquet").write_bytes(b"PAR1" + bytes(range(256)) * 4)
    write_parquet(folder / "missing_y.parquet", x=[1.0, 2.0])
    write_parquet(folder / "text_x.parquet", x=["1.5", "2"], y=[1.0, 2.0])
    write_parquet(folder / "decimal_x.parquet", x=pa.array([1, 2], pa.decimal128(5, 2)), y=[1.0, 2.0])
    write_parquet(folder / "time_x.parquet", x=pa.array([1, 2], pa.timestamp("ms")), y=[1.0, 2.0])
    write_parquet(folder / "unsigned_x.parquet", x=pa.array([1, 2], pa.uint32()), y=[1.0, 2.0])
    write_parquet(folder / "nested_x.parquet", s=pa.array([{"x": 1.0}, {"x": 2.0}]), y=[1.0, 2.0])
    write_parquet(folder / "case_clash.parquet", X=[9.0, 9.0], x=[1.0, 2.0], y=[1.0, 2.0])
    duplicate = pa.Table.from_arrays([pa.array([1.0]), pa.array([2.0]), pa.array([3.0])], ["x", "x", "y"])
    pq.write_table(duplicate, folder / "duplicate.parquet")
    return sorted(str(p) for p in folder.iterdir())


def read_many(paths: list[str], columns: tuple[str, ...]) -> dict[str, tuple[np.ndarray, ...]]:
    """What one call reads (every file here fits in one call)."""
    found, tried = many_files.read_many(paths, columns)
    assert tried == len(paths)
    return found


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _pyarrow(path: str, columns: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    (chunk,) = list(iter_columns(path, columns))
    return chunk


def test_plain_files_come_back_exactly_as_pyarrow_reads_them(tmp_path: Path) -> None:
    good = _good(tmp_path)
    found = read_many(good, ("x", "y"))
    assert sorted(found) == sorted(good)
    for path in good:
        for got, want in zip(found[path], _pyarrow(path, ("x", "y")), strict=True):
            assert _same(got, want), path
    assert found[good[0]][0].dtype == np.float64
    big = found[str(tmp_path / "int64.parquet")][0]
    assert big[0] == float(BIG) == 2.0**53  # rounded as pyarrow rounds, not cast by DuckDB to int


def test_every_file_it_cannot_vouch_for_is_left_to_pyarrow(tmp_path: Path) -> None:
    good, bad = _good(tmp_path / "good"), _bad(tmp_path / "bad")
    mixed = [path for pair in zip(bad, good * 2, strict=False) for path in pair]  # bad files among good ones
    found = read_many(mixed, ("x", "y"))
    assert sorted(found) == sorted(good), sorted(set(found) ^ set(good))


def test_a_name_with_glob_characters_is_left_to_pyarrow(tmp_path: Path) -> None:
    """DuckDB would read ``a[1].parquet`` as the pattern matching ``a1.parquet``: another file's rows."""
    odd = write_parquet(tmp_path / "a[1].parquet", x=[1.0, 2.0], y=[3.0, 4.0])
    other = write_parquet(tmp_path / "a1.parquet", x=[9.0, 9.0], y=[9.0, 9.0])
    found = read_many([str(odd), str(other)], ("x", "y"))
    assert sorted(found) == [str(other)]


def test_files_of_different_types_are_never_cast_to_one(tmp_path: Path) -> None:
    """DuckDB alone would read these as the first file's int32 (1.5 → 2): one query per type signature."""
    first = write_parquet(tmp_path / "a.parquet", x=pa.array([1, 2], pa.int32()), y=[1.0, 2.0])
    second = write_parquet(tmp_path / "b.parquet", x=[1.5, 2.5], y=[1.0, 2.0])
    found = read_many([str(first), str(second)], ("x", "y"))
    np.testing.assert_array_equal(found[str(first)][0], [1.0, 2.0])
    np.testing.assert_array_equal(found[str(second)][0], [1.5, 2.5])


def test_big_files_are_left_to_pyarrow_and_a_call_reads_a_bounded_number_of_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files over CHUNK_ROWS are streamed by pyarrow; one call reads at most ROWS_AHEAD rows (or one file)."""
    monkeypatch.setattr(parquet, "CHUNK_ROWS", 100)
    monkeypatch.setattr(many_files, "ROWS_AHEAD", 150)
    rng = np.random.default_rng(3)
    sizes = [60, 100, 101, 80, 1, 99, 0, 40]
    paths = [
        str(write_parquet(tmp_path / f"f{i}.parquet", x=rng.normal(size=n), y=rng.normal(size=n)))
        for i, n in enumerate(sizes)
    ]
    found, start, calls = {}, 0, []
    while start < len(paths):  # as the reader asks: again from the first file not yet offered
        got, tried = many_files.read_many(paths[start:], ("x", "y"))
        assert tried >= 1
        calls.append(sorted(Path(p).stem for p in got))
        found.update(got)
        start += tried
    assert calls == [["f0"], ["f1"], ["f3", "f4"], ["f5", "f6", "f7"]]  # f2 (101 rows > CHUNK_ROWS) to pyarrow
    for path, arrays in found.items():
        for got, want in zip(arrays, _pyarrow(path, ("x", "y")), strict=True):
            assert _same(got, want)


def test_a_batch_read_ahead_in_bounded_steps_gives_the_moments_of_pyarrow_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader's read-ahead, in many small steps, bad files among good ones: pyarrow's moments, bit for bit."""
    from pipeline.discover.layout import DatasetRef
    from pipeline.reduce.readers import _read_refs

    paths = [p for pair in zip(_good(tmp_path / "good"), _bad(tmp_path / "bad"), strict=False) for p in pair]
    refs = [DatasetRef(Path(p).stem, p, (p,)) for p in paths]
    monkeypatch.setattr(many_files, "ROWS_AHEAD", 20)
    good, moments, bad = _read_refs(refs, ("x", "y"), gram=True)
    monkeypatch.setattr(parquet, "FAST_PATHS", False)
    good_ref, moments_ref, bad_ref = _read_refs(refs, ("x", "y"), gram=True)
    assert good == good_ref and bad == bad_ref
    for field, got, want in zip(moments._fields, moments, moments_ref, strict=True):
        assert got.tobytes() == want.tobytes(), field


def test_files_beyond_small_rows_are_left_to_pyarrow_which_decodes_them_faster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(many_files, "SMALL_ROWS", 50)
    small = write_parquet(tmp_path / "small.parquet", x=np.arange(50.0), y=np.arange(50.0))
    bigger = write_parquet(tmp_path / "bigger.parquet", x=np.arange(51.0), y=np.arange(51.0))
    assert sorted(read_many([str(small), str(bigger)], ("x", "y"))) == [str(small)]


def test_files_bigger_than_small_bytes_are_not_even_asked_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = write_parquet(tmp_path / "small.parquet", x=np.arange(50.0), y=np.arange(50.0))
    monkeypatch.setattr(many_files, "SMALL_BYTES", small.stat().st_size)
    wide = write_parquet(tmp_path / "wide.parquet", x=np.arange(50.0), y=np.arange(50.0), z=np.arange(50.0))
    assert wide.stat().st_size > many_files.SMALL_BYTES
    assert sorted(read_many([str(small), str(wide), str(tmp_path / "gone.parquet")], ("x", "y"))) == [str(small)]


def test_weights_and_file_urls(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "w.parquet", x=[1.0, 2.0], y=[3.0, 4.0], w=[0.5, None])
    found = read_many([f"file://{path}"], ("x", "y", "w"))
    np.testing.assert_array_equal(found[f"file://{path}"][2], [0.5, np.nan])


def test_nothing_without_duckdb_or_fast_paths_or_for_remote_paths(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    good = _good(tmp_path)
    assert read_many(["fakeos://bucket/a.parquet", "gs://bucket/b.parquet"], ("x", "y")) == {}
    monkeypatch.setattr(parquet, "FAST_PATHS", False)
    assert read_many(good, ("x", "y")) == {}
    monkeypatch.setattr(parquet, "FAST_PATHS", True)
    monkeypatch.setattr(many_files, "_database", False)  # as when DuckDB is not installed
    assert not many_files.available()
    assert read_many(good, ("x", "y")) == {}


_FOUND: list[dict] = []


def _collect(tables: list[pa.Table]) -> None:
    _FOUND.extend(row for table in tables for row in table.to_pylist())


def _fit(root: str, group_by: str, key: str | None = None) -> list[dict]:
    config = JobConfig(
        input=root, output=str(Path(fakeos.local_path("fakeos://bucket")).parent / "out"), run_date="2026-01-01",
        group_by=group_by, key_column=key, x_column="x", y_column="y", fit=FitConfig(), run_id="run-1",
        started_at=NOW, batch_size=4,
    )  # fmt: skip
    _FOUND.clear()
    with TestPipeline() as p:
        assert_that((p | DiscoverDatasets(config) | FitDatasets(config))["tables"], _collect)
    rows = [{k: v for k, v in row.items() if k not in ("fitted_at", "source")} for row in _FOUND]
    return sorted(rows, key=lambda row: row["dataset"])


def _equal(a: dict, b: dict) -> bool:
    return all(a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k])) for k in a)


@pytest.mark.parametrize("group_by", ["file", "directory", "column"])
def test_a_remote_input_reads_through_beam_filesystems_and_gives_the_local_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group_by: str
) -> None:
    """The same files on the fake object store (read by pyarrow through ``FileSystems``) and on disk (by DuckDB)."""
    monkeypatch.setenv(fakeos.ROOT_ENV, str(tmp_path / "store"))
    local = Path(fakeos.local_path("fakeos://bucket/in"))
    rng = np.random.default_rng(11)
    for i in range(6):
        x = rng.uniform(-3, 3, 40)
        columns = {"x": x, "y": 2.0 * x + 1.0 + rng.normal(0, 0.1, 40), "k": [f"key{j % 3}" for j in range(40)]}
        write_parquet(local / f"set{i % 2}" / f"d{i}.parquet", **columns)
    (local / "set0" / "broken.parquet").write_bytes(b"not parquet")
    key = "k" if group_by == "column" else None
    remote, here = _fit("fakeos://bucket/in", group_by, key), _fit(str(local), group_by, key)
    assert [r["dataset"] for r in remote] == [r["dataset"] for r in here]
    assert len(remote) == {"file": 7, "directory": 2, "column": 4}[group_by]  # column: 3 keys, the broken file
    for got, want in zip(remote, here, strict=True):
        assert _equal(got, want), (got, want)
    assert {r["status"] for r in remote} == {"ok", "failed"}
