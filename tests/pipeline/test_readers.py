"""The reading DoFns on real Parquet files: batches, bad files, streamed chunks, partial moments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pipeline.read.many_files as many_files
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


def _merge(shards: list) -> object:
    fn = MergePartialsFn()
    accumulator = fn.create_accumulator()
    for _, partials in shards:
        accumulator = fn.add_input(accumulator, partials)
    return fn.extract_output(accumulator)


def test_a_part_with_duplicate_columns_fails_its_directory_once_naming_the_part(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    good = write_parquet(tmp_path / "store=a/part-0.parquet", x=rng.normal(size=20), y=rng.normal(size=20))
    bad = tmp_path / "store=a/part-1.parquet"
    pq.write_table(pa.table([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], names=["x", "y", "x"]), bad)
    big = write_parquet(
        tmp_path / "store=b/part-0.parquet",
        x=pa.array([2**60 + i * 2**40 for i in range(10)], pa.int64()),
        y=pa.array([2**62 - i * 2**41 for i in range(10)], pa.int64()),
    )
    refs = [
        DatasetRef("store=a", str(tmp_path / "store=a"), (str(good),)),
        DatasetRef("store=a", str(tmp_path / "store=a"), (str(bad),)),
        DatasetRef("store=b", str(tmp_path / "store=b"), (str(big),)),
    ]
    batch = _merge(list(ReadPartsFn("x", "y").process(refs)))
    assert batch.datasets == ("store=b",) and batch.data.n.tolist() == [10]
    assert batch.failed == (
        ("store=a", str(tmp_path / "store=a"), "part-1.parquet: column 'x' appears 2 times in the file; "
         "a column must be unique"),
    )  # fmt: skip


def test_keys_of_different_kinds_with_one_id_fail_as_one_dataset(tmp_path: Path) -> None:
    files = {
        "part-0.parquet": pa.array([1, 2] * 5, pa.int64()),
        "part-1.parquet": pa.array(["1", "3"] * 5),
        "part-2.parquet": pa.array([1.0, 2.0] * 5, pa.float32()),
    }
    rng = np.random.default_rng(5)
    for name, keys in files.items():
        write_parquet(tmp_path / name, k=keys, x=rng.normal(size=10), y=rng.normal(size=10))
    config = JobConfig(
        input=str(tmp_path), output=str(tmp_path / "out"), run_date="2026-01-01", group_by="column",
        key_column="k", x_column="x", y_column="y", fit=FitConfig(), run_id="r", started_at=NOW,
    )  # fmt: skip
    paths = [str(tmp_path / name) for name in files]
    shards = [item for path in paths for item in ReadKeyedPartsFn(config).process([path])]
    batch = _merge(shards)
    assert batch.datasets == ("1.0", "2", "2.0", "3") and batch.data.n.tolist() == [5, 5, 5, 5]
    ((dataset, source, reason),) = batch.failed
    assert (dataset, source) == ("1", str(tmp_path))
    assert reason == (
        f"the key 1 has 2 kinds, which are different datasets with one id: integer (in {paths[0]}), "
        f"text (in {paths[1]}); give the key column one type in every file"
    )


def test_a_long_table_read_on_threads_gives_the_same_numbers_as_on_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline.read.parquet, "CHUNK_ROWS", 64)  # many chunks a file, each with every key
    rng = np.random.default_rng(6)
    for i in range(3):
        keys = rng.choice(np.array(["a", "b", "c", "d", "e"], dtype=object), 1000)
        x = rng.normal(size=1000)
        write_parquet(tmp_path / f"part-{i}.parquet", k=pa.array(list(keys)), x=x, y=2 * x + rng.normal(size=1000))
    write_parquet(tmp_path / "part-3.parquet", k=pa.array(["a"] * 200), x=pa.array(["text"] * 200), y=np.ones(200))
    paths = [str(p) for p in sorted(tmp_path.glob("*.parquet"))]

    def read(threads: int) -> list:
        config = JobConfig(
            input=str(tmp_path), output=str(tmp_path / "out"), run_date="2026-01-01", group_by="column",
            key_column="k", x_column="x", y_column="y", fit=FitConfig(), run_id="r", started_at=NOW,
            read_threads=threads,
        )  # fmt: skip
        fn = ReadKeyedPartsFn(config)
        fn.setup()
        try:
            return list(fn.process(paths))
        finally:
            fn.teardown()

    one, two = read(1), read(2)
    assert [shard for shard, _ in one] == [shard for shard, _ in two]
    for (_, a), (_, b) in zip(one, two, strict=True):
        assert (a.datasets, a.parts, a.failed) == (b.datasets, b.parts, b.failed)
        for field_a, field_b in zip(a.moments, b.moments, strict=True):
            np.testing.assert_array_equal(field_a, field_b)  # bit for bit
    failed = [f for _, p in two for f in p.failed]
    assert [(f[2], f[3].split(":")[0]) for f in failed] == [
        (paths[3], "file could not be read, its rows are in no dataset")
    ]
    assert sorted(d for _, p in two for d in p.datasets) == sorted(["a", "b", "c", "d", "e"] * 3)  # once a file


@pytest.mark.parametrize("form", ["gram", "rows"])
@pytest.mark.parametrize("small_rows", [0, 8192], ids=["pyarrow", "duckdb-if-installed"])
def test_files_read_ahead_on_threads_give_the_same_batch_as_on_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str, small_rows: int
) -> None:
    monkeypatch.setattr(many_files, "SMALL_ROWS", small_rows)  # 0: DuckDB reads nothing, pyarrow reads ahead
    rng = np.random.default_rng(7)
    refs = []
    for d in range(6):  # directory datasets of three files; in two of them the middle file is bad
        paths = []
        for i in range(3):
            path = tmp_path / f"d{d}" / f"part-{i}.parquet"
            if i == 1 and d == 2:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"not parquet")
            elif i == 1 and d == 4:
                write_parquet(path, x=pa.array(["text"] * 5), y=np.ones(5))
            else:
                write_parquet(path, x=rng.normal(size=40 + d), y=rng.normal(size=40 + d))
            paths.append(str(path))
        refs.append(DatasetRef(f"d{d}", str(tmp_path / f"d{d}"), tuple(paths)))

    def read(threads: int) -> object:
        fn = ReadBatchFn("x", "y", form, read_threads=threads)
        fn.setup()
        try:
            (batch,) = fn.process(refs)
        finally:
            fn.teardown()
        return batch

    one, two = read(1), read(2)
    assert one.datasets == two.datasets == ("d0", "d1", "d3", "d5") and one.failed == two.failed
    assert [(d, r.split(":")[0]) for d, _, r in two.failed] == [("d2", "part-1.parquet"), ("d4", "part-1.parquet")]
    if form == "gram":
        for a, b in zip(one.data, two.data, strict=True):
            np.testing.assert_array_equal(a, b)  # bit for bit
    else:
        for a, b in zip(one.data, two.data, strict=True):
            for column_a, column_b in zip(a, b, strict=True):
                np.testing.assert_array_equal(column_a, column_b)
