"""Inputs found, named and refused as documented: the real command on real files, links and tables."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.fit_lines import main
from pipeline.table.schema import SCHEMA
from tests.conftest import ROOT, lstsq, write_parquet
from tests.jobs.test_fit_lines import DATE, _one_error_line, read_rows, run_job


def _line(rng: np.random.Generator, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(-5, 5, n)
    return x, 3.0 * x - 1.0 + rng.normal(0, 0.1, n)


def _centered(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least squares about the means: the accurate reference for x far from zero."""
    dx, dy = x - x.mean(), y - y.mean()
    w = float(np.dot(dx, dy) / np.dot(dx, dx))
    return w, float(y.mean() - w * x.mean())


def _manifest(table: Path, date: str = DATE) -> dict:
    return json.loads((table / f"run_date={date}" / "_manifest.json").read_text())


def test_file_layout_quirks_each_end_as_one_honest_row(tmp_path: Path) -> None:
    rng = np.random.default_rng(14)
    source = tmp_path / "in"
    truth = {}
    for name in ("good", "linked/c", "back\\slash"):
        x, y = _line(rng)
        target = tmp_path / "elsewhere/c.parquet" if name == "linked/c" else source / f"{name}.parquet"
        write_parquet(target, x=x, y=y)
        truth[name] = lstsq(x, y)
    (source / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # followed
    (source / "gone.parquet").symlink_to(tmp_path / "deleted.parquet")  # dangling: skipped, and named
    write_parquet(source / "a.parquet", x=[1.0, 2.0, 3.0], y=[1.0, 2.0, 3.0])
    write_parquet(source / "a.PARQUET", x=[1.0, 2.0, 3.0], y=[3.0, 2.0, 1.0])  # the same id "a"
    pq.write_table(pa.table([[1.0, 2.0, 3.0], [1.0, 2.0, 4.0], [0.0, 0.0, 0.0]], names=["x", "y", "x"]),
                   source / "dup.parquet")  # fmt: skip
    nanos = 1_767_225_600_000_000_000 + np.arange(50, dtype=np.int64) * 3_600_000_000_000  # epoch ns, > 2**53
    y = 2e-12 * nanos.astype(float) + rng.normal(0, 0.01, 50)
    write_parquet(source / "nanos.parquet", x=pa.array(nanos, pa.int64()), y=y)
    truth["nanos"] = _centered(nanos.astype(float), y)  # numpy's lstsq loses the intercept at x ~ 1.8e18
    (tmp_path / "alias").symlink_to(source, target_is_directory=True)
    # the input relative to the working directory; the output inside it, through a link and with /./
    given, output = os.path.relpath(source, ROOT), f"{tmp_path}/alias/./fits"
    for date in (DATE, "2026-01-03"):  # the second run must not read the first one's table
        done = run_job("--input", given, "--output", output, "--run_date", date)
        assert done.returncode == 0, done.stderr
        rows = {row["dataset"]: row for row in read_rows(source / "fits", date)}
        assert sorted(rows) == ["a", "back\\slash", "dup", "good", "linked/c", "nanos"]
        for name, (w, b) in truth.items():
            assert rows[name]["status"] == "ok", rows[name]
            assert rows[name]["w"] == pytest.approx(w, rel=1e-7) and rows[name]["b"] == pytest.approx(b, rel=1e-6)
        assert rows["a"]["status"] == "failed" and rows["a"]["error"] == (
            "2 files have the dataset id 'a': a.PARQUET, a.parquet (an id is the path without its .parquet "
            "suffix, in any case); rename all but one"
        )
        assert rows["dup"]["status"] == "failed"
        assert rows["dup"]["error"] == "column 'x' appears 2 times in the file; a column must be unique"
        skipped = [{"path": f"{given}/gone.parquet", "reason": "dangling symbolic link"}]
        assert _manifest(source / "fits", date)["skipped"] == skipped
        assert f"skipped 1 input file(s) that cannot be read: {given}/gone.parquet (dangling symbolic link)" in (
            done.stdout
        )


def test_a_bad_part_fails_its_directory_once_and_every_other_dataset_is_fitted(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    source = tmp_path / "in"
    x, y = _line(rng, 200)
    for i in range(2):
        write_parquet(source / f"store=a/part-{i}.parquet", x=x[i::2], y=y[i::2])
    pq.write_table(pa.table([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], names=["x", "y", "x"]),
                   source / "store=a/part-2.parquet")  # fmt: skip
    ids = (2**62 + np.arange(100, dtype=np.int64) * 2**41).astype(np.int64)  # 64-bit ids, far above 2**53
    values = (2**61 - np.arange(100, dtype=np.int64) * 3 * 2**40).astype(np.int64)
    for i in range(2):
        write_parquet(source / f"store=b/part-{i}.parquet", x=pa.array(ids[i::2]), y=pa.array(values[i::2]))
    write_parquet(source / "store=c/part-0.parquet", x=x, y=y)
    table = tmp_path / "t"
    done = run_job("--input", str(source), "--output", str(table), "--group_by", "directory", "--run_date", DATE)
    assert done.returncode == 0, done.stderr
    rows = read_rows(table)
    assert [(r["dataset"], r["status"]) for r in rows] == [("store=a", "failed"), ("store=b", "ok"),
                                                           ("store=c", "ok")]  # fmt: skip
    assert rows[0]["error"] == "part-2.parquet: column 'x' appears 2 times in the file; a column must be unique"
    # values = 2**63 - 1.5 * ids exactly (every one a float64 without rounding)
    assert rows[1]["n_rows"] == 100 and rows[1]["w"] == pytest.approx(-1.5, rel=1e-9)
    assert rows[1]["b"] == pytest.approx(2.0**63, rel=1e-9)
    assert rows[2]["w"] == pytest.approx(lstsq(x, y)[0], rel=1e-9)


def test_a_spark_folder_under_a_bracketed_name_is_read_as_a_directory(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    folder = tmp_path / "data[1]" / "table.parquet"
    x, y = _line(rng, 100)
    for i in range(2):
        write_parquet(folder / f"part-0000{i}-abc.snappy.parquet", x=x[i * 50 : i * 50 + 50], y=y[i * 50 : i * 50 + 50])
    (folder / "_SUCCESS").write_text("")
    table = tmp_path / "t"
    done = run_job("--input", str(folder), "--output", str(table), "--group_by", "directory", "--run_date", DATE)
    assert done.returncode == 0, done.stderr
    (row,) = read_rows(table)
    assert (row["dataset"], row["status"], row["n_rows"], row["source"]) == (".", "ok", 100, str(folder))
    assert row["w"] == pytest.approx(lstsq(x, y)[0], rel=1e-9)


@pytest.mark.parametrize("inside", ["same", "below"])
def test_an_input_inside_the_output_table_says_so(tmp_path: Path, inside: str) -> None:
    table = tmp_path / "table"
    write_parquet(table / f"run_date={DATE}/part-0.parquet", x=[1.0, 2.0, 3.0], y=[1.0, 2.0, 3.0])
    given = table if inside == "same" else table / f"run_date={DATE}"
    line = _one_error_line(run_job("--input", str(given), "--output", f"{tmp_path}/./table"))
    assert f"--input {given}" in line and "lies inside the output table" in line
    assert "matched no Parquet file" not in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max_steps", "9223372036854775808"], "--max_steps must be between 1 and 9223372036854775807"),
        (["--runner", "NoSuchRunner"], "--runner NoSuchRunner: Unexpected pipeline runner: NoSuchRunner."),
        (["--runner", "DataflowRunner"], "--runner DataflowRunner: Missing GCS path option: temp_location."),
        (["--tolerance", "-1e-3"], "--tolerance must be a finite number >= 0, got -0.001"),  # read, then refused
        (["--learning_rate", "-1E-3"], "--learning_rate must be a positive number, got -0.001"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    write_parquet(tmp_path / "in/a.parquet", x=[1.0, 2.0, 3.0], y=[1.0, 2.0, 3.0])
    line = _one_error_line(run_job("--input", str(tmp_path / "in"), "--output", str(tmp_path / "t"), *args))
    assert message in line, line
    assert "Missing required option: project" in line if "DataflowRunner" in args else True


def test_a_negative_number_after_a_space_is_a_value(tmp_path: Path) -> None:
    from jobs.fit_lines import _negative_values

    assert _negative_values(["--tolerance", "-1e-3", "--x", "-.5", "--incremental", "--max_steps", "5"]) == [
        "--tolerance=-1e-3", "--x=-.5", "--incremental", "--max_steps", "5",
    ]  # fmt: skip


@pytest.mark.parametrize("flag", ["--incremental", "--warm_start"])
def test_a_foreign_previous_partition_is_named_with_its_file_and_column(tmp_path: Path, flag: str) -> None:
    write_parquet(tmp_path / "in/a.parquet", x=[1.0, 2.0, 3.0], y=[1.0, 2.0, 3.0])
    table = tmp_path / "t"
    folder = table / "run_date=2026-01-01"
    foreign = {name: pa.nulls(1, SCHEMA.field(name).type) for name in SCHEMA.names}
    foreign.update(dataset=pa.array(["a"]), w=pa.array(["b"]))  # someone else's table: w holds text
    write_parquet(folder / "part-x.parquet", **foreign)
    (folder / "_manifest.json").write_text(json.dumps({"run_id": "old", "rows": {"null_key": 0}}))
    line = _one_error_line(run_job("--input", str(tmp_path / "in"), "--output", str(table), "--run_date", DATE, flag))
    assert f"the previous partition's file {folder}/part-x.parquet is not a tapefit table: column 'w' has type " in (
        line
    )
    assert "string, not double" in line


def test_a_fully_reused_column_grouping_keeps_its_null_key_count(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(6)
    source, table = tmp_path / "in", tmp_path / "t"
    for part in range(2):
        keys = pa.array(["a", "b", None, "c", None] * 10)
        write_parquet(source / f"part-{part}.parquet", key=keys, x=rng.normal(size=50), y=rng.normal(size=50))
    args = ["--input", str(source), "--output", str(table), "--group_by", "column:key", "--incremental"]
    for date in ("2026-01-01", "2026-01-02"):
        assert main([*args, "--run_date", date]) == 0
        assert _manifest(table, date)["rows"]["null_key"] == 40
        assert "null key 40" in capsys.readouterr().out
    assert _manifest(table, "2026-01-02")["counts"]["reused"] == 3
