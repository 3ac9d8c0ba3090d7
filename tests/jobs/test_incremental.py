"""--incremental and --warm_start across runs of the real job (in-process DirectRunner)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from jobs.fit_lines import main
from pipeline import __version__
from pipeline.config.options import config_from_options
from pipeline.config.settings import JobConfig
from pipeline.discover.fingerprints import fingerprint, settings_key
from pipeline.discover.layout import file_ref, input_layout, list_input
from pipeline.table.history import write_fingerprints
from pipeline.table.partitions import load_partition
from pipeline.table.paths import partition_dir
from tests.conftest import lstsq, write_parquet
from tests.jobs.test_fit_lines import _one_error_line, read_rows, run_job


def _run(source: Path, table: Path, date: str, *extra: str) -> dict[str, dict]:
    assert main(["--input", str(source), "--output", str(table), "--run_date", date, *extra]) == 0
    return {row["dataset"]: row for row in read_rows(table, date)}


def _write(path: Path, rng: np.random.Generator, w: float, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(-3, 3, n)
    y = w * x + 1 + rng.normal(0, 0.1, n)
    write_parquet(path, x=x, y=y)
    return x, y


def _bump_mtime(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))


def test_only_changed_new_and_failed_datasets_are_refit(tmp_path: Path) -> None:
    source, table = tmp_path / "in", tmp_path / "table"
    rng = np.random.default_rng(1)
    for i in range(8):
        _write(source / f"d{i}.parquet", rng, w=i)
    write_parquet(source / "broken.parquet", x=[1.0, 2.0])  # no y: failed every time
    first = _run(source, table, "2026-01-01", "--incremental")
    assert all(row["reused_from"] is None for row in first.values())

    x, y = _write(source / "d3.parquet", rng, w=-7.0)  # changed content
    _write(source / "new.parquet", rng, w=2.5)
    (source / "d7.parquet").unlink()
    second = _run(source, table, "2026-01-02", "--incremental")

    refit = sorted(name for name, row in second.items() if row["reused_from"] is None)
    assert refit == ["broken", "d3", "new"]
    assert "d7" not in second and len(second) == 9
    assert second["d3"]["w"] == pytest.approx(lstsq(x, y)[0], rel=1e-9)
    for name in ("d0", "d1", "d2", "d4", "d5", "d6"):
        reused, before = second[name], first[name]
        assert reused["reused_from"] == "2026-01-01"
        assert (reused["w"], reused["b"], reused["steps"], reused["fitted_at"]) == (
            before["w"], before["b"], before["steps"], before["fitted_at"],
        )  # fmt: skip
        assert reused["run_id"] == second["d3"]["run_id"] != before["run_id"]

    _bump_mtime(source / "d0.parquet")  # a touched file counts as changed
    third = _run(source, table, "2026-01-03", "--incremental")
    assert sorted(n for n, r in third.items() if r["reused_from"] is None) == ["broken", "d0"]
    assert third["d1"]["reused_from"] == "2026-01-01"  # names the run that fitted it

    changed_settings = _run(source, table, "2026-01-04", "--incremental", "--max_steps", "500")
    assert all(row["reused_from"] is None for row in changed_settings.values())


def test_column_grouping_reuses_all_or_nothing(tmp_path: Path) -> None:
    source, table = tmp_path / "in", tmp_path / "table"
    rng = np.random.default_rng(2)
    for part in range(2):
        keys = pa.array(["a", "b", "c"] * 20)
        write_parquet(source / f"part-{part}.parquet", key=keys, x=rng.normal(size=60), y=rng.normal(size=60))
    args = ("--group_by", "column:key", "--incremental")
    _run(source, table, "2026-01-01", *args)
    unchanged = _run(source, table, "2026-01-02", *args)
    assert {r["reused_from"] for r in unchanged.values()} == {"2026-01-01"} and len(unchanged) == 3
    _bump_mtime(source / "part-1.parquet")
    changed = _run(source, table, "2026-01-03", *args)
    assert {r["reused_from"] for r in changed.values()} == {None}


def test_warm_start_saves_steps_and_lands_on_the_same_fit(tmp_path: Path) -> None:
    source, table = tmp_path / "in", tmp_path / "table"
    rng = np.random.default_rng(3)
    originals = {}
    for i in range(5):
        originals[i] = _write(source / f"d{i}.parquet", rng, w=1.5 + i)
    _run(source, table, "2026-01-01")
    for i, (x, y) in originals.items():  # the next day's data: a little more of the same
        extra = rng.uniform(-3, 3, 20)
        write_parquet(
            source / f"d{i}.parquet",
            x=np.append(x, extra),
            y=np.append(y, (1.5 + i) * extra + 1 + rng.normal(0, 0.1, 20)),
        )
    cold = _run(source, table, "2026-01-02")
    warm = _run(source, table, "2026-01-03", "--warm_start")
    for name, row in warm.items():
        assert row["status"] == "ok" and row["reused_from"] is None
        assert row["steps"] < cold[name]["steps"] / 2, (row["steps"], cold[name]["steps"])
        assert row["w"] == pytest.approx(cold[name]["w"], rel=1e-10)
        assert row["b"] == pytest.approx(cold[name]["b"], rel=1e-9, abs=1e-12)


def test_huber_warm_start_starts_from_w_b_and_sigma(tmp_path: Path) -> None:
    """Several datasets in one batch, each started from its own (w, b, σ), each mapped with its own scaling."""
    source, table = tmp_path / "in", tmp_path / "table"
    rng = np.random.default_rng(8)
    for i in range(4):
        x = rng.uniform(-5, 5, 400) * (1 + 10 * i)
        y = (0.5 + i) * x + 3 * i + rng.normal(0, 0.2 * (1 + i), 400)
        y[rng.choice(400, 12, replace=False)] += 80 * (1 + i)  # spikes
        write_parquet(source / f"d{i}.parquet", x=x, y=y)
    cold = _run(source, table, "2026-01-01", "--loss", "huber")
    warm = _run(source, table, "2026-01-02", "--loss", "huber", "--warm_start")
    for name, row in warm.items():
        assert cold[name]["status"] == "ok" and row["status"] == "ok"
        assert row["steps"] < cold[name]["steps"] / 2, (name, row["steps"], cold[name]["steps"])
        assert row["w"] == pytest.approx(cold[name]["w"], rel=1e-9)
        assert row["scale"] == pytest.approx(cold[name]["scale"], rel=1e-8)


def _config(source: Path, table: Path, date: str, *extra: str) -> JobConfig:
    """The configuration the job builds from the same flags."""
    flags = ["--input", str(source), "--output", str(table), "--run_date", date, *extra]
    return config_from_options(PipelineOptions(flags))


def _key_of_0_1_0(config: JobConfig) -> str:
    """The settings key as tapefit 0.1.0 spelled it: no version in it."""
    return json.dumps([config.x_column, config.y_column, config.group_by, config.key_column or "", repr(config.fit)])


def _rewrite_fingerprints(config: JobConfig, settings: str, recorded: str | None) -> None:
    """Rewrite the committed partition's fingerprints as a run under ``settings`` wrote them (file grouping)."""
    layout = input_layout(config.input, config.output)
    prints = {
        file_ref(layout, f.path).dataset: fingerprint(settings, [(f.path, f.size, f.modified, f.identity)])
        for f in list_input(layout).files
    }
    write_fingerprints(partition_dir(config), prints, recorded)


@pytest.mark.parametrize("written_by", ["0.1.0", "0.1.9", __version__])
def test_rows_fitted_by_another_tapefit_version_are_refit(tmp_path: Path, written_by: str) -> None:
    source, table = tmp_path / "in", tmp_path / "table"
    rng = np.random.default_rng(7)
    data = {i: _write(source / f"d{i}.parquet", rng, w=0.5 + i) for i in range(3)}
    first = _run(source, table, "2026-01-01", "--incremental")
    config = _config(source, table, "2026-01-01", "--incremental")
    if written_by == "0.1.0":  # its key had no version, and its file recorded no settings
        _rewrite_fingerprints(config, _key_of_0_1_0(config), None)
    else:
        key = settings_key(config, version=written_by)
        _rewrite_fingerprints(config, key, key)

    second = _run(source, table, "2026-01-02", "--incremental")

    expected = {"2026-01-01"} if written_by == __version__ else {None}  # the same version still reuses
    assert {row["reused_from"] for row in second.values()} == expected
    for i, (x, y) in data.items():
        assert second[f"d{i}"]["w"] == first[f"d{i}"]["w"] == pytest.approx(lstsq(x, y)[0], rel=1e-9)


def _keyed(path: Path, rng: np.random.Generator, keys: list[str]) -> None:
    x = rng.uniform(-3, 3, len(keys))
    write_parquet(path, key=pa.array(keys), x=x, y=2.0 * x - 1.0 + rng.normal(0, 0.1, len(keys)))


def test_column_grouping_refits_everything_after_a_failed_key(tmp_path: Path) -> None:
    source, table = tmp_path / "in", tmp_path / "table"
    rng = np.random.default_rng(8)
    _keyed(source / "part-0.parquet", rng, ["a", "b"] * 20 + ["lonely"])  # one row: failed every time
    _keyed(source / "part-1.parquet", rng, ["a", "b"] * 20)
    args = ("--group_by", "column:key", "--incremental")
    first = _run(source, table, "2026-01-01", *args)
    assert first["lonely"]["status"] == "failed" and first["a"]["status"] == "ok"

    second = _run(source, table, "2026-01-02", *args)

    assert {row["reused_from"] for row in second.values()} == {None} and sorted(second) == ["a", "b", "lonely"]
    assert [second[k]["w"] for k in "ab"] == [first[k]["w"] for k in "ab"]
    assert second["lonely"]["status"] == "failed"


def test_column_grouping_refits_everything_while_a_file_was_unreadable(tmp_path: Path) -> None:
    source, table = tmp_path / "in", tmp_path / "table"
    rng = np.random.default_rng(9)
    for part in range(2):
        _keyed(source / f"part-{part}.parquet", rng, ["a", "b"] * 20)
    (source / "part-2.parquet").write_bytes(b"not Parquet")  # its keys' fits lack its rows
    args = ("--group_by", "column:key", "--incremental")
    first = _run(source, table, "2026-01-01", *args)
    assert first["part-2.parquet"]["status"] == "failed" and first["a"]["n_rows"] == 40

    unfixed = _run(source, table, "2026-01-02", *args)
    assert {row["reused_from"] for row in unfixed.values()} == {None}
    assert unfixed["part-2.parquet"]["status"] == "failed" and unfixed["a"]["w"] == first["a"]["w"]

    _keyed(source / "part-2.parquet", rng, ["a", "b"] * 20)
    fixed = _run(source, table, "2026-01-03", *args)
    assert sorted(fixed) == ["a", "b"] and {row["reused_from"] for row in fixed.values()} == {None}
    parts = pa.concat_tables([pq.read_table(source / f"part-{part}.parquet") for part in range(3)])
    a = parts.filter(pa.compute.equal(parts.column("key"), "a"))
    assert fixed["a"]["n_rows"] == 60
    assert fixed["a"]["w"] == pytest.approx(lstsq(a.column("x").to_numpy(), a.column("y").to_numpy())[0], rel=1e-9)

    again = _run(source, table, "2026-01-04", *args)  # nothing failed and nothing changed: all reused
    assert {row["reused_from"] for row in again.values()} == {"2026-01-03"}


def test_rerunning_a_date_with_warm_start_gives_the_same_fit(tmp_path: Path) -> None:
    source, table = tmp_path / "in", tmp_path / "table"
    rng = np.random.default_rng(10)
    for i in range(4):
        _write(source / f"d{i}.parquet", rng, w=1.5 + i)
    short = ("--max_steps", "40")  # not converged: where it starts shows in w
    best = _run(source, tmp_path / "converged", "2026-01-01")
    day1 = _run(source, table, "2026-01-01", *short)
    assert {row["status"] for row in day1.values()} == {"not_converged"}

    runs = [_run(source, table, "2026-01-02", "--warm_start", *short) for _ in range(2)]

    for name, row in runs[0].items():
        again = runs[1][name]
        assert (again["w"], again["b"], again["steps"]) == (row["w"], row["b"], row["steps"])  # bit for bit
        # it did start from 2026-01-01's 40 steps, and went on from there
        assert abs(row["w"] - best[name]["w"]) < abs(day1[name]["w"] - best[name]["w"]) / 2


@pytest.mark.parametrize(
    "earlier",
    [["--no_intercept"], ["--loss", "huber"], ["--x_column", "z"], ["--learning_rate", "0.05"], ["0.1.0"]],
    ids=lambda flags: " ".join(flags),
)
def test_warm_start_only_from_a_partition_with_the_same_settings(tmp_path: Path, earlier: list[str]) -> None:
    source, table = tmp_path / "in", tmp_path / "table"
    rng = np.random.default_rng(11)
    for i in range(3):
        x = rng.uniform(-3, 3, 200)
        write_parquet(
            source / f"d{i}.parquet", x=x, z=x + rng.normal(0, 1, 200), y=(1 + i) * x + 2 + rng.normal(0, 0.1, 200)
        )
    short = ("--max_steps", "40")
    if earlier == ["0.1.0"]:  # the same settings, but recorded by tapefit 0.1.0: no settings key in the partition
        _run(source, table, "2026-01-01", *short)
        config = _config(source, table, "2026-01-01", *short)
        _rewrite_fingerprints(config, _key_of_0_1_0(config), None)
    else:
        _run(source, table, "2026-01-01", *earlier, *short)

    warm = _run(source, table, "2026-01-02", "--warm_start", *short)
    cold = _run(source, tmp_path / "cold", "2026-01-02", *short)

    for name, row in cold.items():
        assert (warm[name]["w"], warm[name]["b"], warm[name]["steps"]) == (row["w"], row["b"], row["steps"])


def test_reruns_read_only_the_files_the_manifest_lists(tmp_path: Path) -> None:
    source, table = tmp_path / "in", tmp_path / "table"
    rng = np.random.default_rng(12)
    for i in range(3):
        _write(source / f"d{i}.parquet", rng, w=i - 1.0)
    first = _run(source, table, "2026-01-01", "--incremental")
    folder = table / "run_date=2026-01-01"
    [listed] = json.loads((folder / "_manifest.json").read_text())["files"]
    stray = pq.read_table(folder / listed)  # another run's file, not (or no longer) listed: say mid-commit
    stray = stray.set_column(stray.schema.get_field_index("w"), "w", pa.array([99.0] * stray.num_rows))
    pq.write_table(stray, folder / "part-other-00000-of-00001.parquet")

    rows, manifest = load_partition(folder)
    assert [(row["dataset"], row["w"]) for row in rows] == [(name, first[name]["w"]) for name in sorted(first)]
    assert manifest["files"] == [listed]
    second = _run(source, table, "2026-01-02", "--incremental")
    assert {name: (row["w"], row["reused_from"]) for name, row in second.items()} == {
        name: (row["w"], "2026-01-01") for name, row in first.items()
    }

    (folder / listed).unlink()  # the manifest names a file that is gone: one line naming it, exit 2
    args = ["--input", str(source), "--output", str(table), "--run_date", "2026-01-01", "--incremental"]
    line = _one_error_line(run_job(*args))
    assert f"the previous partition's file {folder / listed} is missing, though its _manifest.json lists it" in line
