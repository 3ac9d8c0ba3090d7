"""Workload generation: deterministic, the right shape, redone when interrupted; dataset ids."""

from __future__ import annotations

import dataclasses

import pyarrow.parquet as pq
import pytest

from benchmarks.workloads import DEFAULT_WORKLOADS, FULL, QUICK, dataset_id, ensure, generate, parquet_files
from tests.benchmarks.conftest import TINY


def _rows(root) -> list:
    return [pq.read_table(p).to_pylist() for p in parquet_files(root)]


@pytest.mark.parametrize("layout", sorted(TINY))
def test_generation_is_deterministic_with_the_right_shape(tmp_path, inputs, layout):
    workload = TINY[layout]
    generate(workload, tmp_path / "again")
    assert _rows(tmp_path / "again") == _rows(inputs[layout])
    files = parquet_files(inputs[layout])
    assert len(files) == workload.n_files
    tables = [pq.read_table(f) for f in files]
    assert sum(t.num_rows for t in tables) == workload.total_rows
    assert all(t.schema.field("x").type == "double" and t.schema.field("y").type == "double" for t in tables)


def test_other_workloads_differ(tmp_path):
    generate(dataclasses.replace(TINY["file"], name="M"), tmp_path / "m")
    generate(TINY["file"], tmp_path / "s")
    assert _rows(tmp_path / "m") != _rows(tmp_path / "s")


def test_an_interrupted_generation_is_redone(tmp_path):
    workload = TINY["file"]
    data = ensure(workload, tmp_path)
    (tmp_path / f"{workload.key}.done").unlink()
    next(data.rglob("*.parquet")).write_bytes(b"half a file")
    ensure(workload, tmp_path)
    assert sum(pq.read_table(p).num_rows for p in parquet_files(data)) == workload.total_rows


def test_quick_workloads_mirror_the_full_ones():
    assert [w.layout for w in QUICK.values()] == ["file", "file", "directory", "column", "file", "column", "file"]
    assert list(QUICK) == list(FULL) == list(DEFAULT_WORKLOADS)


def test_scale_workloads_have_their_own_cache_keys():
    assert FULL["S10"].key == "S10-200000x100-200000f-10000pf-v1" and FULL["S"].key == "S-20000x100-20000f-v1"
    assert FULL["S10"].ids()[10_000] == "g001/d010000"
    assert FULL["K10"].total_rows == 200_000_000 and FULL["K10"].n_datasets == 100_000


def test_dataset_ids_follow_tapefit():
    assert dataset_id("/in/g000/d000001.parquet", "/in", "file") == "g000/d000001"
    assert dataset_id("/in/part-00001.parquet", "/in", "directory") == "."
    assert dataset_id("/in/store=x/part-0.parquet", "/in", "directory") == "store=x"


def test_generation_in_chunks_writes_every_dataset(tmp_path, monkeypatch):
    monkeypatch.setattr("benchmarks.workloads._CHUNK_ROWS", 70)  # 2 datasets of 30 rows per chunk
    workload = TINY["file"]
    generate(workload, tmp_path)
    ids = [str(p.relative_to(tmp_path).with_suffix("")) for p in parquet_files(tmp_path)]
    assert ids == workload.ids()
    assert all(pq.read_table(p).num_rows == workload.rows for p in parquet_files(tmp_path))
