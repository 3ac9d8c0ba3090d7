"""FitDatasets on real Parquet files with TestPipeline: one honest row per dataset."""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.config.settings import FitConfig, JobConfig
from pipeline.discover.listing import DiscoverDatasets
from pipeline.graph.dead_letters import error_message as _error_message
from pipeline.graph.fit_datasets import FitDatasets
from pipeline.read.parquet import DatasetError
from tests.conftest import lstsq, write_parquet
from tests.pipeline.test_options import NOW


def _config(root: Path, group_by: str = "file", key: str | None = None, form: str = "gram") -> JobConfig:
    return JobConfig(
        input=str(root), output=str(root.parent / "out"), run_date="2026-01-01", group_by=group_by,
        key_column=key, x_column="x", y_column="y", fit=FitConfig(loss_form=form), run_id="run-1", started_at=NOW,
        batch_size=3,
    )  # fmt: skip


FORMS = pytest.mark.parametrize("form", ["gram", "rows"])


def _rows(results: dict) -> beam.PCollection:
    return results["tables"] | "Rows" >> beam.FlatMap(lambda table: table.to_pylist())


def _rounded(row: dict) -> tuple:
    """The parts of a row a test can state exactly (w, b rounded to 9 digits)."""
    w = None if row["w"] is None else round(row["w"], 9)
    b = None if row["b"] is None else round(row["b"], 9)
    return row["dataset"], row["status"], w, b, row["n_rows"], row["n_dropped"]


@FORMS
def test_good_and_bad_files_each_get_exactly_one_row(tmp_path: Path, form: str) -> None:
    root = tmp_path / "in"
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    y = 4 * x - 2 + rng.normal(0, 0.1, 200)
    write_parquet(root / "good.parquet", x=x, y=y)
    write_parquet(root / "with nan é.parquet", x=np.append(x, np.nan), y=np.append(y, 1.0))
    write_parquet(root / "bad/missing_y.parquet", x=[1.0, 2.0])
    write_parquet(root / "bad/text.parquet", x=["a", "b"], y=[1.0, 2.0])
    write_parquet(root / "bad/empty.parquet", x=pa.array([], pa.float64()), y=pa.array([], pa.float64()))
    write_parquet(root / "bad/const.parquet", x=[1.0, 1.0, 1.0], y=[1.0, 2.0, 3.0])
    (root / "bad/zero.parquet").write_bytes(b"")
    (root / "bad/corrupt.parquet").write_bytes(bytes(range(256)) * 4)
    w, b = round(lstsq(x, y)[0], 9), round(lstsq(x, y)[1], 9)
    config = _config(root, form=form)
    with TestPipeline() as p:
        rows = _rows(p | DiscoverDatasets(config) | FitDatasets(config))
        assert_that(
            rows | beam.Map(_rounded),
            equal_to(
                [
                    ("good", "ok", w, b, 200, 0),
                    ("with nan é", "ok", w, b, 200, 1),
                    ("bad/missing_y", "failed", None, None, 0, 0),
                    ("bad/text", "failed", None, None, 0, 0),
                    ("bad/empty", "failed", None, None, 0, 0),
                    ("bad/const", "failed", None, None, 3, 0),
                    ("bad/zero", "failed", None, None, 0, 0),
                    ("bad/corrupt", "failed", None, None, 0, 0),
                ]
            ),  # fmt: skip
            label="Rows",
        )
        assert_that(
            rows
            | beam.Filter(lambda r: r["dataset"] in ("bad/missing_y", "bad/zero"))
            | beam.Map(lambda r: r["error"]),
            equal_to(["missing column 'y' (columns: x)", "not a readable Parquet file: Parquet file size is 0 bytes"]),
            label="Errors",
        )
        assert_that(
            rows | beam.Map(lambda r: (r["run_id"], r["source"].startswith(str(root)), "\n" not in (r["error"] or ""))),
            equal_to([("run-1", True, True)] * 8),
            label="Provenance",
        )


@FORMS
def test_directory_grouping_concatenates_part_files(tmp_path: Path, form: str) -> None:
    root = tmp_path / "in"
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 10, 300)
    y = -1.5 * x + 7 + rng.normal(0, 0.2, 300)
    for i in range(3):
        write_parquet(
            root / "store=a" / f"part-{i}.parquet", x=x[i * 100 : (i + 1) * 100], y=y[i * 100 : (i + 1) * 100]
        )
    write_parquet(root / "store=b" / "part-0.parquet", x=[1.0, 2.0])
    w, b = (round(v, 9) for v in lstsq(x, y))
    config = _config(root, "directory", form=form)
    with TestPipeline() as p:
        rows = _rows(p | DiscoverDatasets(config) | FitDatasets(config))
        assert_that(
            rows | beam.Map(_rounded),
            equal_to([("store=a", "ok", w, b, 300, 0), ("store=b", "failed", None, None, 0, 0)]),
        )


@FORMS
def test_column_grouping_spans_files_and_counts_null_keys(tmp_path: Path, form: str) -> None:
    root = tmp_path / "in"
    rng = np.random.default_rng(2)
    keys = np.array(["s1", "s2", "s3"] * 100, dtype=object)
    x = rng.normal(size=300)
    y = np.where(keys == "s1", 2 * x, np.where(keys == "s2", -x + 1, 5.0 + 0 * x)) + rng.normal(0, 0.01, 300)
    keys[[5, 50]] = None
    for i, part in enumerate(np.array_split(np.arange(300), 3)):
        write_parquet(root / f"part-{i}.parquet", sensor=pa.array(list(keys[part])), x=x[part], y=y[part])
    (root / "part-9.parquet").write_bytes(b"not parquet")
    valid = np.array([k is not None for k in keys])
    expected = []
    for key in ("s1", "s2", "s3"):
        mask = valid & (keys == key)
        w, b = lstsq(x[mask], y[mask])
        expected.append((key, "ok", round(w, 9), round(b, 9), int(mask.sum()), 0))
    expected.append(("part-9.parquet", "failed", None, None, 0, 0))
    config = _config(root, "column", "sensor", form)
    with TestPipeline() as p:
        results = p | DiscoverDatasets(config) | FitDatasets(config)
        rows = _rows(results)
        assert_that(rows | beam.Map(_rounded), equal_to(expected), label="Rows")
        assert_that(results["null_keys"] | beam.CombineGlobally(sum), equal_to([2]), label="NullKeys")
        assert_that(
            rows | beam.Filter(lambda r: r["status"] == "failed") | beam.Map(lambda r: r["error"][:45]),
            equal_to(["file could not be read, its rows are in no da"]),
            label="UnreadableFile",
        )


def test_dead_letters_become_one_line_messages() -> None:
    trace = ["Traceback (most recent call last):\n", "ZeroDivisionError: division\n by zero\n"]
    assert _error_message((ZeroDivisionError, "ZeroDivisionError('division by zero')", trace)) == (
        "ZeroDivisionError: division by zero"
    )
    trace = ["Traceback (most recent call last):\n", "pipeline.reading.DatasetError: missing column 'y'\n"]
    assert _error_message((DatasetError, "DatasetError(...)", trace)) == "missing column 'y'"
    assert len(_error_message((OSError, "OSError()", ["OSError: " + "x" * 5000]))) == 300


@FORMS
def test_typed_keys_are_one_dataset_each_and_an_id_shared_by_two_kinds_fails_once(tmp_path: Path, form: str) -> None:
    root = tmp_path / "in"
    rng = np.random.default_rng(7)
    keys = {
        "part-0.parquet": pa.array([1, 2, None] * 10, pa.int64()),
        "part-1.parquet": pa.array([1.0, -0.0, 0.0, float("nan"), 2.5] * 6, pa.float64()),
        "part-2.parquet": pa.array(["1", "x", "x"] * 10),
    }
    data = {}
    for name, column in keys.items():
        x = rng.normal(size=30)
        y = 2 * x + rng.normal(0, 0.1, 30)
        write_parquet(root / name, k=column, x=x, y=y)
        data[name] = (column.to_pylist(), x, y)

    def fit(name: str, *values: object) -> tuple:
        column, x, y = data[name]
        rows = np.array([v in values and v == v for v in column])
        w, b = lstsq(x[rows], y[rows])
        return round(w, 9), round(b, 9), int(rows.sum())

    expected = [("1", "failed", None, None, 0, 0)]  # the integer 1 and the text "1": two datasets, one id
    for dataset, (name, values) in {
        "2": ("part-0.parquet", (2,)), "1.0": ("part-1.parquet", (1.0,)), "0.0": ("part-1.parquet", (0.0,)),
        "2.5": ("part-1.parquet", (2.5,)), "x": ("part-2.parquet", ("x",)),
    }.items():  # fmt: skip
        w, b, n = fit(name, *values)
        expected.append((dataset, "ok", w, b, n, 0))
    config = _config(root, "column", "k", form)
    with TestPipeline() as p:
        results = p | DiscoverDatasets(config) | FitDatasets(config)
        rows = _rows(results)
        assert_that(rows | beam.Map(_rounded), equal_to(expected), label="Rows")
        assert_that(  # 10 null integers, 6 NaN floats
            results["null_keys"] | beam.CombineGlobally(sum), equal_to([16]), label="NullKeys"
        )
        assert_that(
            rows | beam.Filter(lambda r: r["status"] == "failed") | beam.Map(lambda r: r["error"]),
            equal_to(
                [
                    f"the key 1 has 2 kinds, which are different datasets with one id: integer (in "
                    f"{root}/part-0.parquet), text (in {root}/part-2.parquet); give the key column one type in "
                    "every file"
                ]
            ),
            label="Why",
        )


def test_a_dead_lettered_part_fails_its_whole_dataset_once(tmp_path: Path) -> None:
    from pipeline.discover.layout import DatasetRef
    from pipeline.graph.dead_letters import dead_parts
    from pipeline.reduce.batches import MergePartialsFn
    from pipeline.reduce.readers import ReadPartsFn

    rng = np.random.default_rng(8)
    folder = tmp_path / "store=a"
    good = write_parquet(folder / "part-0.parquet", x=rng.normal(size=10), y=rng.normal(size=10))
    refs = [DatasetRef("store=a", str(folder), (str(good),)), DatasetRef("store=a", str(folder), (f"{folder}/p1",))]
    # what Beam's with_exception_handling() hands on for the second part, which raised even alone
    trace = ["Traceback (most recent call last):\n", "MemoryError: out of memory\n"]
    dead_letter = ([refs[1]], (MemoryError, "MemoryError('out of memory')", trace))
    fn = MergePartialsFn()
    accumulator = fn.create_accumulator()
    for _, partials in [*ReadPartsFn("x", "y").process(refs[:1]), *dead_parts(dead_letter)]:
        accumulator = fn.add_input(accumulator, partials)
    batch = fn.extract_output(accumulator)
    assert batch.datasets == ()
    assert batch.failed == (("store=a", str(folder), "p1: MemoryError: out of memory"),)
