"""Reading columns from real Parquet files, and every way a file can be bad."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipeline.read.parquet import DatasetError, read_keyed, read_xy
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
