"""The command line, end to end: real subprocesses, real Parquet, real DirectRunner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import ROOT, lstsq, write_parquet

DATE = "2026-01-02"


def run_job(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m jobs.fit_lines`` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "jobs.fit_lines", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def read_rows(table: Path, date: str = DATE) -> list[dict]:
    """All rows of one partition, sorted by dataset."""
    files = sorted((table / f"run_date={date}").glob("*.parquet"))
    return sorted(pq.read_table([str(f) for f in files]).to_pylist(), key=lambda r: r["dataset"])


def _good(rng: np.random.Generator, n: int, w: float, b: float, noise: float) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(-5, 5, n)
    return x, w * x + b + rng.normal(0, noise, n)


@pytest.fixture(scope="module")
def file_input(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A file-layout input with good datasets, every kind of bad one, and stray files."""
    root = tmp_path_factory.mktemp("files")
    rng = np.random.default_rng(42)
    truth = {}
    for name, (n, w, b, noise) in {
        "sensors/a": (500, 2.0, 1.0, 0.1),
        "sensors/b": (50, -0.5, 100.0, 2.0),
        "stores/café du monde": (300, 1e-3, 5.0, 1e-4),
    }.items():
        x, y = _good(rng, n, w, b, noise)
        write_parquet(root / f"{name}.parquet", x=x, y=y)
        truth[name] = lstsq(x, y)
    x, y = _good(rng, 100, 3.0, -1.0, 0.5)
    x[[3, 7]], y[[11]] = [np.nan, np.inf], [None]
    write_parquet(root / "with_gaps.parquet", x=pa.array(x, pa.float32()), y=y)
    keep = np.isfinite(x.astype(np.float32)) & np.isfinite(y)
    truth["with_gaps"] = lstsq(x.astype(np.float32)[keep], y[keep])
    write_parquet(root / "ints.parquet", x=pa.array([1, 2, 3, 4], pa.int16()), y=pa.array([3, 5, 7, 9], pa.int64()))
    truth["ints"] = (2.0, 1.0)
    (root / "broken").mkdir()
    (root / "broken/zero_bytes.parquet").write_bytes(b"")
    (root / "broken/corrupt.parquet").write_bytes(os.urandom(2048))
    write_parquet(root / "broken/missing_y.parquet", x=[1.0, 2.0, 3.0])
    write_parquet(root / "broken/text_x.parquet", x=["1", "2", "3"], y=[1.0, 2.0, 3.0])
    write_parquet(root / "broken/empty.parquet", x=pa.array([], pa.float64()), y=pa.array([], pa.float64()))
    write_parquet(root / "broken/all_null_y.parquet", x=[1.0, 2.0, 3.0], y=pa.array([None] * 3, pa.float64()))
    write_parquet(root / "broken/one_row.parquet", x=[1.0], y=[2.0])
    write_parquet(root / "broken/constant_x.parquet", x=[4.0] * 5, y=[1.0, 2.0, 3.0, 4.0, 5.0])
    write_parquet(
        root / "broken/overflow.parquet", x=np.array([1.0, 2.0, 3.0]) * 1e200, y=np.array([1.0, 2.5, 2.9]) * 1e200
    )
    (root / "README.txt").write_text("not a dataset")
    (root / "_SUCCESS").write_text("")
    return root, truth


BAD = {
    "broken/zero_bytes": "size is 0 bytes",
    "broken/corrupt": "not a readable Parquet file",
    "broken/missing_y": "missing column 'y'",
    "broken/text_x": "column 'x' has type string",
    "broken/empty": "no rows",
    "broken/all_null_y": "found 0",
    "broken/one_row": "found 1",
    "broken/constant_x": "x is constant",
    "broken/overflow": "overflows float64",
}


@pytest.fixture(scope="module")
def file_run(
    file_input: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess]:
    table = tmp_path_factory.mktemp("out") / "table"
    return table, run_job("--input", str(file_input[0]), "--output", str(table), "--run_date", DATE)


def test_file_layout_gives_one_honest_row_per_dataset(file_input: tuple[Path, dict], file_run) -> None:  # noqa: ANN001
    _, truth = file_input
    table, done = file_run
    assert done.returncode == 0, done.stderr
    rows = read_rows(table)
    assert [r["dataset"] for r in rows] == sorted([*truth, *BAD])
    for row in rows:
        if row["dataset"] in truth:
            w, b = truth[row["dataset"]]
            assert row["status"] == "ok" and row["converged"] and row["error"] is None, row
            assert abs(row["w"] - w) <= 1e-9 * (1 + abs(w)) and abs(row["b"] - b) <= 1e-9 * (1 + abs(b)), row
        else:
            assert row["status"] == "failed" and not row["converged"], row
            assert BAD[row["dataset"]] in row["error"] and "\n" not in row["error"], row
            assert row["w"] is None and row["b"] is None and row["final_loss"] is None
    gaps = next(r for r in rows if r["dataset"] == "with_gaps")
    assert (gaps["n_rows"], gaps["n_dropped"]) == (97, 3)
    assert len({r["run_id"] for r in rows}) == 1
    assert next(r for r in rows if r["dataset"] == "stores/café du monde")["source"].endswith(
        "stores/café du monde.parquet"
    )


def test_summary_and_manifest(file_run) -> None:  # noqa: ANN001
    table, done = file_run
    assert "14 datasets" in done.stdout and "ok 5" in done.stdout and "failed 9" in done.stdout
    assert f"run_date={DATE}" in done.stdout
    manifest = json.loads((table / f"run_date={DATE}" / "_manifest.json").read_text())
    assert manifest["counts"] == {"datasets": 14, "ok": 5, "not_converged": 0, "diverged": 0, "failed": 9, "reused": 0}
    assert manifest["options"]["fit"]["learning_rate"] == 0.1 and manifest["run_date"] == DATE
    assert manifest["started_at"] <= manifest["finished_at"]
    assert sorted(p.name for p in (table / f"run_date={DATE}").iterdir()) == sorted(
        [*manifest["files"], "_manifest.json", "_fingerprints.arrow"]
    )
    assert sorted(p.name for p in table.iterdir()) == [f"run_date={DATE}"]  # no staging, no beam-temp


def test_table_reads_as_hive_partitioned_parquet_in_duckdb(file_run) -> None:  # noqa: ANN001
    table, _ = file_run
    count, dates, statuses = duckdb.sql(
        f"select count(*), count(distinct run_date), count(distinct status) "
        f"from read_parquet('{table}/*/*.parquet', hive_partitioning = true)"
    ).fetchall()[0]
    assert (count, dates, statuses) == (14, 1, 2)


def test_rerun_of_the_same_date_replaces_the_partition(file_input: tuple[Path, dict], file_run) -> None:  # noqa: ANN001
    table, _ = file_run
    before = read_rows(table)
    done = run_job("--input", str(file_input[0]), "--output", str(table), "--run_date", DATE)
    assert done.returncode == 0, done.stderr
    after = read_rows(table)
    assert [r["dataset"] for r in after] == [r["dataset"] for r in before]
    assert [(r["w"], r["b"], r["final_loss"]) for r in after] == [(r["w"], r["b"], r["final_loss"]) for r in before]
    assert len({r["run_id"] for r in after}) == 1 and after[0]["run_id"] != before[0]["run_id"]
    manifest = json.loads((table / f"run_date={DATE}" / "_manifest.json").read_text())
    assert all(manifest["run_id"] in p.name for p in (table / f"run_date={DATE}").glob("*.parquet"))
    assert sorted(p.name for p in table.iterdir()) == [f"run_date={DATE}"]


def test_multi_process_runner_gives_bit_identical_results(
    file_input: tuple[Path, dict], file_run, tmp_path: Path
) -> None:  # noqa: ANN001
    table, _ = file_run
    done = run_job(
        "--input", str(file_input[0]), "--output", str(tmp_path / "mp"), "--run_date", DATE,
        "--direct_running_mode=multi_processing", "--direct_num_workers=2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    numbers = [(r["dataset"], r["status"], r["w"], r["b"], r["final_loss"], r["steps"]) for r in read_rows(table)]
    assert [
        (r["dataset"], r["status"], r["w"], r["b"], r["final_loss"], r["steps"]) for r in read_rows(tmp_path / "mp")
    ] == numbers


def test_directory_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x, y = _good(rng, 400, -2.0, 3.0, 0.3)
    for i in range(4):
        write_parquet(tmp_path / "in/store=berlin" / f"part-{i:05}.parquet", x=x[i::4], y=y[i::4])
    (tmp_path / "in/store=berlin/_SUCCESS").write_text("")
    write_parquet(tmp_path / "in/store=paris/part-00000.parquet", x=[1.0, 2.0, 3.0], y=[2.0, 4.0, 6.0])
    done = run_job(
        "--input", str(tmp_path / "in"), "--output", str(tmp_path / "t"), "--group_by", "directory", "--run_date", DATE
    )
    assert done.returncode == 0, done.stderr
    rows = read_rows(tmp_path / "t")
    assert [(r["dataset"], r["status"], r["n_rows"]) for r in rows] == [
        ("store=berlin", "ok", 400),
        ("store=paris", "ok", 3),
    ]
    order = np.concatenate([np.arange(i, 400, 4) for i in range(4)])
    w, b = lstsq(x[order], y[order])
    assert rows[0]["w"] == pytest.approx(w, rel=1e-9) and rows[0]["b"] == pytest.approx(b, rel=1e-9)
    assert rows[0]["source"] == str(tmp_path / "in/store=berlin")


def test_column_layout_with_null_keys(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    truth = {}
    frames = []
    for key, (w, b) in {"dino": (0.5, 1.0), "star": (-1.0, 0.0), "7": (4.0, -4.0)}.items():
        x, y = _good(rng, 90, w, b, 0.1)
        truth[key] = lstsq(x, y)
        frames.append((np.array([key] * 90, dtype=object), x, y))
    keys = np.concatenate([f[0] for f in frames] + [np.array([None] * 4, dtype=object)])
    xs = np.concatenate([f[1] for f in frames] + [np.ones(4)])
    ys = np.concatenate([f[2] for f in frames] + [np.ones(4)])
    for i in range(3):  # every key's rows are spread over all three files
        part = np.arange(i, keys.size, 3)
        write_parquet(
            tmp_path / f"in/part-{i}.parquet", dataset=pa.array(list(keys[part]), pa.string()), x=xs[part], y=ys[part]
        )
    table = tmp_path / "t"
    done = run_job(
        "--input",
        str(tmp_path / "in/*.parquet"),
        "--output",
        str(table),
        "--group_by",
        "column:dataset",
        "--run_date",
        DATE,
    )
    assert done.returncode == 0, done.stderr
    rows = read_rows(table)
    assert [r["dataset"] for r in rows] == ["7", "dino", "star"]
    for row in rows:
        assert row["status"] == "ok" and row["n_rows"] == 90 and row["source"] == str(tmp_path / "in/*.parquet")
        assert row["w"] == pytest.approx(truth[row["dataset"]][0], rel=1e-9)
    assert json.loads((table / f"run_date={DATE}" / "_manifest.json").read_text())["rows"]["null_key"] == 4
    assert "null key 4" in done.stdout


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("tapefit: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--group_by", "rows"], "--group_by must be"),
        (["--learning_rate", "-1"], "--learning_rate must be a positive"),
        (["--max_steps", "many"], "--max_steps: invalid int value"),
        (["--lerning_rate", "0.1"], "unrecognized option --lerning_rate"),
        (["--run_date", "yesterday"], "--run_date must be a date"),
    ],
)
def test_invalid_options_exit_2_with_one_line(
    file_input: tuple[Path, dict], tmp_path: Path, args: list[str], message: str
) -> None:
    done = run_job("--input", str(file_input[0]), "--output", str(tmp_path / "t"), *args)
    assert message in _one_error_line(done)
    assert not (tmp_path / "t").exists()


def test_input_without_parquet_files_exits_2(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in/notes.txt").write_text("x")
    done = run_job("--input", str(tmp_path / "in"), "--output", str(tmp_path / "t"))
    assert "input matched no Parquet file" in _one_error_line(done)


def test_unwritable_output_exits_2(file_input: tuple[Path, dict], tmp_path: Path) -> None:
    (tmp_path / "occupied").write_text("a file, not a folder")
    done = run_job("--input", str(file_input[0]), "--output", str(tmp_path / "occupied/table"))
    assert "cannot write output" in _one_error_line(done)


def test_missing_input_flag_exits_2(tmp_path: Path) -> None:
    assert "--input is required" in _one_error_line(run_job("--output", str(tmp_path)))


def test_help_and_option_errors_never_import_tensorflow() -> None:
    probe = (
        "import sys, contextlib, io\n"
        "from jobs.fit_lines import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()):\n"
        "    codes = (main(['--help']), main(['--input', 'x', '--output', 'y', '--group_by', 'bad']))\n"
        "assert codes == (0, 2), codes\n"
        "assert '--group_by' in out.getvalue() and '--learning_rate' in out.getvalue()\n"
        "print('tensorflow' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_console_command_is_installed() -> None:
    command = Path(sys.executable).parent / "tapefit"
    done = subprocess.run([str(command), "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "--input" in done.stdout


def test_killed_run_leaves_previous_partition_intact(file_input: tuple[Path, dict], tmp_path: Path) -> None:
    table = tmp_path / "t"
    assert run_job("--input", str(file_input[0]), "--output", str(table), "--run_date", DATE).returncode == 0
    partition = table / f"run_date={DATE}"
    before = {p.name: p.read_bytes() for p in partition.iterdir()}
    # A textbook loop with a tiny step and no tolerance runs (practically) forever.
    slow = subprocess.Popen(
        [sys.executable, "-m", "jobs.fit_lines", "--input", str(file_input[0]), "--output", str(table),
         "--run_date", DATE, "--no_standardize", "--learning_rate", "1e-12", "--tolerance", "0",
         "--max_steps", "2000000000"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(12)
    assert slow.poll() is None, "the slow run ended before it could be killed"
    slow.send_signal(signal.SIGKILL)
    slow.wait(timeout=30)
    assert {p.name: p.read_bytes() for p in partition.iterdir()} == before
    # The next good run commits and sweeps away what the killed one left behind.
    assert run_job("--input", str(file_input[0]), "--output", str(table), "--run_date", DATE).returncode == 0
    assert sorted(p.name for p in table.iterdir()) == [f"run_date={DATE}"]
