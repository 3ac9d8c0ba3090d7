"""The reading DoFns on real Parquet files: batches, bad files, streamed chunks, partial moments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import pipeline.read.parquet
from pipeline.config.settings import FitConfig, JobConfig
from pipeline.discover.layout import DatasetRef
from pipeline.fit import LineFitter
from pipeline.reduce.batches import MergePartialsFn
from pipeline.reduce.moments import segment_moments
from pipeline.reduce.readers import ReadBatchFn, ReadKeyedPartsFn, ReadPartsFn
from tests.conftest import lstsq, write_parquet
from tests.pipeline.test_options import NOW


def _ref(path: Path) -> DatasetRef:
    return DatasetRef(path.stem, str(path), (str(path),))


@pytest.mark.parametrize("form", ["gram", "rows"])
def test_a_bad_file_fails_alone_and_its_batch_mates_are_read(tmp_path: Path, form: str) -> None:
    rng = np.random.default_rng(1)
    good = [write_parquet(tmp_path / f"g{i}.parquet", x=rng.normal(size=30), y=rng.normal(size=30)) for i in range(3)]
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    refs = [_ref(good[0]), _ref(tmp_path / "bad.parquet"), _ref(good[1]), _ref(good[2])]
    (batch,) = ReadBatchFn("x", "y", form).process(refs)
    assert batch.datasets == ("g0", "g1", "g2")
    assert [(d, r.split(":")[0]) for d, _, r in batch.failed] == [("bad", "not a readable Parquet file")]
    sizes = batch.data.n.tolist() if form == "gram" else [len(x) for x, _ in batch.data]
    assert sizes == [30, 30, 30]


def test_part_files_become_partials_that_merge_into_the_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline.read.parquet, "CHUNK_ROWS", 7)  # stream every file in chunks of 7 rows
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 10, 100)
    y = 3 * x - 2 + rng.normal(0, 0.5, 100)
    folder = tmp_path / "store=a"
    parts = [
        write_parquet(folder / f"part-{i}.parquet", x=x[i * 25 : i * 25 + 25], y=y[i * 25 : i * 25 + 25])
        for i in range(4)
    ]
    (folder / "part-9.parquet").write_bytes(b"")
    refs = [DatasetRef("store=a", str(folder), (str(p),)) for p in [*parts, folder / "part-9.parquet"]]
    fn = MergePartialsFn()
    shards = list(ReadPartsFn("x", "y").process(refs[:4]))
    assert len(shards) == 1
    batch = fn.extract_output(fn.add_input(fn.create_accumulator(), shards[0][1]))
    whole = segment_moments(x, y, np.zeros(1, np.int64))
    assert batch.datasets == ("store=a",) and batch.data.n.tolist() == [100]
    assert batch.data.cxx[0] * batch.data.scale_x[0] ** 2 == pytest.approx(
        whole.cxx[0] * whole.scale_x[0] ** 2, rel=1e-12
    )
    (result,) = LineFitter(FitConfig()).fit_moments(batch.data)
    assert (result.w, result.b) == pytest.approx(lstsq(x, y), rel=1e-9)
    # a bad part fails the whole dataset, naming the part
    with_bad = [p for _, p in ReadPartsFn("x", "y").process(refs)]
    failed = fn.extract_output(fn.add_input(fn.create_accumulator(), with_bad[0]))
    assert failed.datasets == () and failed.failed[0][0] == "store=a" and "part-9.parquet" in failed.failed[0][2]


def test_long_table_keys_are_streamed_split_and_merged_across_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline.read.parquet, "CHUNK_ROWS", 7)
    rng = np.random.default_rng(3)
    keys = np.array(["a", "b", "c", None] * 30, dtype=object)
    x = rng.normal(size=120)
    y = np.where(keys == "a", 2 * x, np.where(keys == "b", -x, 0.5 * x + 1)) + rng.normal(0, 0.1, 120)
    for i in range(2):
        rows = slice(i * 60, i * 60 + 60)
        write_parquet(tmp_path / f"part-{i}.parquet", k=pa.array(list(keys[rows])), x=x[rows], y=y[rows])
    config = JobConfig(
        input=str(tmp_path), output=str(tmp_path / "out"), run_date="2026-01-01", group_by="column",
        key_column="k", x_column="x", y_column="y", fit=FitConfig(), run_id="r", started_at=NOW,
    )  # fmt: skip
    fn = MergePartialsFn()
    accumulator = fn.create_accumulator()
    null_rows = 0
    for path in sorted(tmp_path.glob("*.parquet")):  # one file per element, as batches may be
        for item in ReadKeyedPartsFn(config).process([str(path)]):
            if isinstance(item, int):
                null_rows += item
            else:
                accumulator = fn.add_input(accumulator, item[1])
    batch = fn.extract_output(accumulator)
    assert null_rows == 30 and batch.datasets == ("a", "b", "c") and batch.data.n.tolist() == [30, 30, 30]
    for key, result in zip(batch.datasets, LineFitter(FitConfig()).fit_moments(batch.data), strict=True):
        rows = keys == key
        assert (result.w, result.b) == pytest.approx(lstsq(x[rows], y[rows]), rel=1e-9, abs=1e-12)
