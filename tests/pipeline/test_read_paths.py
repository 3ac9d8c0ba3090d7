"""The fast reading paths give exactly the output of the reference reads, bad files included.

``pipeline.read.parquet.FAST_PATHS`` switches off every shortcut of the readers (local
files opened through a plain ``OSFile``, no cast of float64 columns, grouping keys read
dictionary-encoded, encoded before they become text, radix-sorted). Each layout is
fitted twice through ``DiscoverDatasets | FitDatasets`` on the same real files, once
each way, and the output rows must be identical in every column but the run's clock:
the same numbers to the last bit, the same statuses, the same ``failed`` reasons.
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

import pipeline.read.parquet as parquet
from pipeline.config.settings import FitConfig, JobConfig
from pipeline.discover.listing import DiscoverDatasets
from pipeline.graph.fit_datasets import FitDatasets
from tests.conftest import write_parquet
from tests.pipeline.test_options import NOW

BIG = 2**53 + 1  # not a float64: rounds to 2**53 (ties to even)


def _line(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(-5, 5, n)
    return x, 3.0 * x - 1.0 + rng.normal(0, 0.2, n)


def _write_duplicate_columns(path: Path, **key: pa.Array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = [pa.array([1.0, 2.0]), pa.array([1.0, 2.0]), pa.array([3.0, 4.0]), *(v[:2] for v in key.values())]
    pq.write_table(pa.Table.from_arrays(arrays, ["x", "x", "y", *key]), path)


def _bad_files(folder: Path, **key: object) -> None:
    """Every way a file can be bad (and a few odd but good ones), with ``key`` columns if given."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zero.parquet").write_bytes(b"")
    (folder / "corrupt.parquet").write_bytes(b"PAR1" + bytes(range(256)) * 4)
    write_parquet(folder / "missing_y.parquet", x=[1.0, 2.0, 3.0], **{k: v[:3] for k, v in key.items()})
    _write_duplicate_columns(folder / "duplicate.parquet", **key)
    write_parquet(folder / "no_key.parquet", x=[1.0, 2.0], y=[3.0, 4.0])  # the key column missing, if any
    write_parquet(folder / "text_x.parquet", x=["a", "b", "c"], y=[1.0, 2.0, 3.0], **{k: v[:3] for k, v in key.items()})
    write_parquet(
        folder / "big_ints.parquet",
        x=pa.array([BIG, BIG + 2, 2**60, -(2**62), 7], pa.int64()),
        y=pa.array([1, 2, 3, 4, 5], pa.int64()),
        **{k: v[:5] for k, v in key.items()},
    )
    write_parquet(
        folder / "narrow.parquet",
        x=pa.array([1, 2, None, 4, 5], pa.int8()),
        y=pa.array([0.5, 1.5, 2.5, None, 4.5], pa.float32()),
        **{k: v[:5] for k, v in key.items()},
    )
    write_parquet(
        folder / "nan_inf.parquet",
        x=[1.0, np.nan, 3.0, np.inf, 5.0],
        y=[2.0, 4.0, -np.inf, 8.0, 10.0],
        **{k: v[:5] for k, v in key.items()},
    )


def _files_input(root: Path) -> None:
    rng = np.random.default_rng(1)
    for i in range(30):
        write_parquet(root / f"g{i % 3}/d{i:02d}.parquet", **dict(zip("xy", _line(rng, 50 + i), strict=True)))
    write_parquet(root / "tiny/one_row.parquet", x=[1.0], y=[2.0])
    _bad_files(root / "bad")


def _directory_input(root: Path) -> None:
    rng = np.random.default_rng(2)
    for d in range(4):
        for part in range(3):
            write_parquet(root / f"set{d}/part-{part}.parquet", **dict(zip("xy", _line(rng, 40), strict=True)))
    _bad_files(root / "set_bad")  # one dataset whose parts are all bad or odd, the first reason kept
    for bad in sorted((root / "set_bad").iterdir()):  # and each bad part beside a good one, a reason each
        folder = root / f"with_{bad.stem}"
        folder.mkdir()
        (folder / "part-1.parquet").write_bytes(bad.read_bytes())
        write_parquet(folder / "part-0.parquet", **dict(zip("xy", _line(rng, 40), strict=True)))
    write_parquet(root / "mixed/part-0.parquet", **dict(zip("xy", _line(rng, 40), strict=True)))
    (root / "mixed/part-1.parquet").write_bytes(b"")  # a good part and an unreadable one


def _column_input(root: Path) -> None:
    rng = np.random.default_rng(3)
    keys = pa.array(["a", "b", None, "c", "b"] * 40)
    x, y = _line(rng, 200)
    write_parquet(root / "p0.parquet", k=keys, x=x, y=y)
    x, y = _line(rng, 200)
    write_parquet(root / "p1.parquet", k=pa.array(["c", "d", "a", "a"] * 50).dictionary_encode(), x=x, y=y)
    x, y = _line(rng, 200)
    write_parquet(root / "p2.parquet", k=pa.array(["e", "a", "b", "d"] * 50, pa.large_string()), x=x, y=y)
    _bad_files(root / "bad", k=pa.array(["a", "b", "f", "f", None]))


def _int_key_input(root: Path) -> None:
    rng = np.random.default_rng(4)
    for part in range(3):
        x, y = _line(rng, 300)
        codes = rng.integers(-3, 40_000, 300)  # > 32,767 distinct-capable: both sort paths
        keys = pa.array(np.where(codes % 17 == 0, None, codes * (2**40)), pa.int64())
        write_parquet(root / f"p{part}.parquet", k=keys, x=x, y=y)
    x, y = _line(rng, 300)
    write_parquet(root / "p3.parquet", k=pa.array(rng.integers(0, 5, 300), pa.int16()), x=x, y=y)


def _many_keys_input(root: Path) -> None:
    rng = np.random.default_rng(5)
    x, y = _line(rng, 120_000)
    keys = pa.array([f"k{i:05d}" for i in rng.integers(0, 40_000, 120_000)])  # more than 32,767 distinct keys
    write_parquet(root / "p0.parquet", k=keys, x=x, y=y)


def _chunked_input(root: Path) -> None:
    """Files read in several chunks (``CHUNK_ROWS`` is lowered): a key's pieces merged within a file."""
    rng = np.random.default_rng(6)
    for part in range(2):
        x, y = _line(rng, 5_000)
        keys = pa.array([f"k{i}" for i in rng.integers(0, 300, 5_000)])
        path = root / f"p{part}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"k": keys, "x": x, "y": y}), path, row_group_size=700)


CASES = {
    "file": (_files_input, "file", None),
    "directory": (_directory_input, "directory", None),
    "column": (_column_input, "column", "k"),
    "column-int": (_int_key_input, "column", "k"),
    "column-many": (_many_keys_input, "column", "k"),
    "column-chunks": (_chunked_input, "column", "k"),
}


_FOUND: list[dict] = []  # the rows of the last run (module level: the matcher is pickled by reference)


def _collect(tables: list[pa.Table]) -> None:
    _FOUND.extend(row for table in tables for row in table.to_pylist())


def _rows(root: Path, group_by: str, key: str | None, form: str) -> list[dict]:
    config = JobConfig(
        input=str(root), output=str(root.parent / "out"), run_date="2026-01-01", group_by=group_by,
        key_column=key, x_column="x", y_column="y", fit=FitConfig(loss_form=form), run_id="run-1", started_at=NOW,
        batch_size=7,
    )  # fmt: skip
    _FOUND.clear()
    with TestPipeline() as p:
        tables = (p | DiscoverDatasets(config) | FitDatasets(config))["tables"]
        assert_that(tables, _collect)
    found = list(_FOUND)
    for row in found:
        del row["fitted_at"]
    return sorted(found, key=lambda row: row["dataset"])


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b) or (math.isnan(a) and math.isnan(b))
    return a == b


# Every case in both loss forms, except 40,000 keys of three rows in the row form (a minute
# of descent): the row form reads a long table as in the other column cases.
@pytest.mark.parametrize(
    ("case", "form"), [(c, f) for c in sorted(CASES) for f in ("gram", "rows") if (c, f) != ("column-many", "rows")]
)
def test_fast_reads_give_the_reference_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, form: str):
    make, group_by, key = CASES[case]
    root = tmp_path / "in"
    make(root)
    if case == "column-chunks":
        monkeypatch.setattr(parquet, "CHUNK_ROWS", 1_000)
    monkeypatch.setattr(parquet, "FAST_PATHS", False)
    reference = _rows(root, group_by, key, form)
    monkeypatch.setattr(parquet, "FAST_PATHS", True)
    fast = _rows(root, group_by, key, form)
    assert [r["dataset"] for r in fast] == [r["dataset"] for r in reference]
    for got, want in zip(fast, reference, strict=True):
        differ = {k: (got[k], want[k]) for k in want if not _same(got[k], want[k])}
        assert not differ, (got["dataset"], differ)
    statuses = {r["status"] for r in reference}
    assert "ok" in statuses
    if case in ("file", "directory", "column"):
        assert "failed" in statuses  # the bad files are there, as failed rows with their reasons
        reasons = " ".join(r["error"] or "" for r in reference)
        for expected in ("size is 0 bytes", "not a readable Parquet file", "missing column 'y'", "appears 2 times"):
            assert expected in reasons, (expected, reasons)
