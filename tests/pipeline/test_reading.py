"""Reading columns from real Parquet files, and every way a file can be bad."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.read.parquet import DatasetError, iter_tables, iter_xy, read_keyed, read_xy
from tests.conftest import write_parquet


def test_integer_and_float_columns_of_any_width_become_float64(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "a.parquet",
        x=pa.array([1, 2, None], pa.int8()),
        y=pa.array([0.5, None, 2.5], pa.float32()),
    )
    x, y = read_xy(str(path), "x", "y")
    assert x.dtype == y.dtype == np.float64
    np.testing.assert_array_equal(x, [1.0, 2.0, np.nan])
    np.testing.assert_array_equal(y, [0.5, np.nan, 2.5])


def test_reads_only_the_named_columns(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "a.parquet", t=[1.0, 2.0], v=[3.0, 4.0], other=["a", "b"])
    x, y = read_xy(str(path), "t", "v")
    np.testing.assert_array_equal(x, [1.0, 2.0])
    np.testing.assert_array_equal(y, [3.0, 4.0])


def test_all_null_column_reads_as_nan(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "a.parquet", x=[1.0, 2.0], y=pa.array([None, None], pa.null()))
    assert np.isnan(read_xy(str(path), "x", "y")[1]).all()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "size is 0 bytes"),
        (lambda p: p.write_bytes(b"PAR1 this is not parquet at all" * 10), "not a readable Parquet file"),
        (lambda p: write_parquet(p, x=[1.0, 2.0]), "missing column 'y' (columns: x)"),
        (lambda p: write_parquet(p, x=["a", "b"], y=[1.0, 2.0]), "column 'x' has type string"),
        (lambda p: write_parquet(p, x=[True, False], y=[1.0, 2.0]), "column 'x' has type bool"),
    ],
)
def test_bad_files_raise_one_line_dataset_errors(tmp_path: Path, make, message: str) -> None:  # noqa: ANN001
    path = tmp_path / "bad.parquet"
    make(path)
    with pytest.raises(DatasetError) as caught:
        read_xy(str(path), "x", "y")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_long_table_is_split_by_key_keeping_row_order(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "long.parquet",
        key=pa.array(["b", "a", None, "b", "a", None]),
        x=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        y=[10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
    )
    chunks, null_rows = read_keyed(str(path), "key", "x", "y")
    assert null_rows == 2
    by_key = {chunk.key: chunk for chunk in chunks}
    assert sorted(by_key) == ["a", "b"]
    np.testing.assert_array_equal(by_key["a"].x, [2.0, 5.0])
    np.testing.assert_array_equal(by_key["b"].y, [10.0, 40.0])
    assert by_key["a"].path == str(path)


def test_non_string_keys_become_their_text(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "k.parquet", store=pa.array([3, 3, 12], pa.int32()), x=[1, 2, 3], y=[1, 2, 3])
    chunks, null_rows = read_keyed(str(path), "store", "x", "y")
    assert sorted(chunk.key for chunk in chunks) == ["12", "3"] and null_rows == 0


def test_integers_beyond_2_to_the_53_are_rounded_to_the_nearest_float64(tmp_path: Path) -> None:
    nanoseconds = [1_767_225_600_123_456_789, 2**53 + 1, 2**53 + 3, 2**63 - 1, -(2**63)]
    ids = [2**64 - 1, 2**53 + 1, 0, 18_446_744_073_709_551_557, 7]
    path = write_parquet(tmp_path / "a.parquet", x=pa.array(nanoseconds, pa.int64()), y=pa.array(ids, pa.uint64()))
    x, y = read_xy(str(path), "x", "y")
    # Python's int -> float is IEEE round-to-nearest, ties to even: the documented rounding
    assert x.tolist() == [float(v) for v in nanoseconds] and y.tolist() == [float(v) for v in ids]
    assert x[1] == 2.0**53 and x[2] == 2.0**53 + 4  # the ties go to the even neighbour
    assert [len(c[0]) for c in iter_xy(str(path), "x", "y")] == [5]  # the streamed read too


def test_duplicate_column_names_are_named_plainly(tmp_path: Path) -> None:
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.table([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], names=["x", "y", "x"]), path)
    for read in (lambda: read_xy(str(path), "x", "y"), lambda: list(iter_xy(str(path), "x", "y"))):
        with pytest.raises(DatasetError, match=r"^column 'x' appears 2 times in the file; a column must be unique$"):
            read()
    keyed = tmp_path / "dup_key.parquet"
    pq.write_table(pa.table([["a", "b"], [1.0, 2.0], [3.0, 4.0], ["c", "d"]], names=["k", "x", "y", "k"]), keyed)
    with pytest.raises(DatasetError, match="column 'k' appears 2 times"):
        read_keyed(str(keyed), "k", "x", "y")
    unused = tmp_path / "unused.parquet"
    pq.write_table(pa.table([[1.0, 2.0], [3.0, 4.0], [0, 0], [0, 0]], names=["x", "y", "z", "z"]), unused)
    assert read_xy(str(unused), "x", "y")[1].tolist() == [3.0, 4.0]  # a duplicate nobody reads is harmless


def _keys(path: Path) -> tuple[dict[str, tuple[str, list[float]]], int]:
    chunks, null_rows = read_keyed(str(path), "k", "x", "y")
    return {chunk.key: (chunk.kind, chunk.x.tolist()) for chunk in chunks}, null_rows


def test_key_ids_are_typed_and_round_trip(tmp_path: Path) -> None:
    def write(name: str, keys: pa.Array) -> Path:
        n = len(keys)
        return write_parquet(tmp_path / name, k=keys, x=np.arange(n, dtype=float), y=np.ones(n))

    ints = write("i.parquet", pa.array([1, 1, 2**60 + 1, None], pa.int64()))
    assert _keys(ints) == ({"1": ("integer", [0.0, 1.0]), "1152921504606846977": ("integer", [2.0])}, 1)
    floats = write("f.parquet", pa.array([1.0, -0.0, 0.0, float("nan"), 2.5, None, 1e16, 0.1], pa.float64()))
    found, nulls = _keys(floats)
    # -0.0 == 0.0 is one value; NaN is no value: it is a null key, counted and not fitted
    assert found == {
        "0.0": ("float", [1.0, 2.0]),
        "0.1": ("float", [7.0]),
        "1.0": ("float", [0.0]),
        "1e+16": ("float", [6.0]),
        "2.5": ("float", [4.0]),
    }
    assert nulls == 2
    assert sorted(float(key) for key in found) == [0.0, 0.1, 1.0, 2.5, 1e16]  # each id reads back as its value
    single = write("f32.parquet", pa.array([0.1, 3.0], pa.float32()))
    assert _keys(single) == ({"0.1": ("float", [0.0]), "3.0": ("float", [1.0])}, 0)
    assert np.float32("0.1") == pa.array([0.1], pa.float32()).to_numpy()[0]
    text = write("s.parquet", pa.array(["1", "1.0", "nan"]))
    assert _keys(text) == ({"1": ("text", [0.0]), "1.0": ("text", [1.0]), "nan": ("text", [2.0])}, 0)
    categories = write("d.parquet", pa.array(["b", "a", "b"]).dictionary_encode())
    assert _keys(categories) == ({"a": ("text", [1.0]), "b": ("text", [0.0, 2.0])}, 0)


@pytest.mark.parametrize("dictionary", [(), ("k",)])
def test_a_streamed_file_comes_in_chunks_of_exactly_chunk_rows_wherever_its_row_groups_end(
    tmp_path: Path, dictionary: tuple[str, ...]
) -> None:
    keys = [f"k{i % 37}" for i in range(2_500)]
    path = tmp_path / "long.parquet"
    pq.write_table(pa.table({"k": keys, "x": np.arange(2_500.0)}), path, row_group_size=700)
    tables = list(iter_tables(str(path), ["k", "x"], chunk_rows=1_000, dictionary=dictionary))
    assert [t.num_rows for t in tables] == [1_000, 1_000, 500]  # not cut at 700, 1,400, 2,100
    assert pa.types.is_dictionary(tables[0].schema.field("k").type) == bool(dictionary)
    np.testing.assert_array_equal(np.concatenate([t.column("x").to_numpy() for t in tables]), np.arange(2_500.0))
    assert [v for t in tables for v in t.column("k").cast(pa.string()).to_pylist()] == keys
