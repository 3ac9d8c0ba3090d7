"""Options become one frozen, validated config; bad values fail with one line."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.config.errors import ConfigError
from pipeline.config.options import config_from_options
from pipeline.config.settings import FitConfig, GroupBy

NOW = dt.datetime(2026, 11, 25, 23, 59, tzinfo=dt.timezone.utc)


def _config(*flags: str):  # noqa: ANN202
    return config_from_options(PipelineOptions(["--input", "in", "--output", "out/", *flags]), now=NOW)


def test_defaults() -> None:
    config = _config()
    assert (config.input, config.output, config.run_date) == ("in", "out", "2026-11-25")
    assert (config.group_by, config.key_column, config.x_column, config.y_column) == (GroupBy.FILE, None, "x", "y")
    assert config.fit == FitConfig(
        learning_rate=0.1, max_steps=1000, tolerance=0.0, standardize=True, dtype="float64", loss="squared",
        huber_epsilon=1.35, intercept=True, weights=None, loss_form="gram",
    )  # fmt: skip
    assert config.max_rows_in_memory == 0 and config.columns == ("x", "y") and config.read_threads == 0
    assert (config.batch_size, config.incremental, config.warm_start) == (2000, False, False)
    assert config.run_id.startswith("20261125T235900Z-")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.input = "other"  # type: ignore[misc]


def test_every_flag_is_read() -> None:
    config = _config(
        "--group_by", "column:sensor", "--x_column", "t", "--y_column", "v", "--learning_rate", "0.5",
        "--max_steps", "20", "--tolerance", "1e-6", "--no_standardize", "--dtype", "float32",
        "--run_date", "2024-02-29", "--runner", "DirectRunner", "--loss_form", "rows", "--batch_size", "7",
        "--incremental", "--warm_start", "--read_threads", "3",
    )  # fmt: skip
    assert (config.group_by, config.key_column, config.x_column, config.y_column) == ("column", "sensor", "t", "v")
    assert config.read_threads == 3
    assert _config("--direct_running_mode", "multi_processing").read_threads == 1  # a process per core already
    assert _config("--runner", "DataflowRunner").read_threads == 1
    assert config.fit == FitConfig(0.5, 20, 1e-6, False, "float32", loss_form="rows")
    assert (config.batch_size, config.incremental, config.warm_start) == (7, True, True)
    assert config.run_date == "2024-02-29"
    assert config.describe()["group_by"] == "column:sensor"


def test_robust_weighted_and_through_origin_flags() -> None:
    config = _config(
        "--loss", "huber", "--huber_epsilon", "2", "--weight_column", "count", "--no_intercept",
        "--max_rows_in_memory", "5000000",
    )  # fmt: skip
    assert (config.fit.loss, config.fit.huber_epsilon, config.fit.intercept) == ("huber", 2.0, False)
    assert (config.fit.weights, config.weight_column, config.fit.loss_form) == ("count", "count", "rows")
    assert config.columns == ("x", "y", "count") and config.max_rows_in_memory == 5_000_000
    assert config.describe()["fit"]["weights"] == "count"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--loss", "absolute"], "--loss must be one of squared, huber"),
        (["--huber_epsilon", "1"], "--huber_epsilon must be a number > 1"),
        (["--huber_epsilon", "0.5"], "--huber_epsilon must be a number > 1"),
        (["--weight_column", ""], "--weight_column must name a column"),
        (["--weight_column", "y"], "must differ from the x, y and grouping columns"),
        (["--loss", "huber", "--loss_form", "gram"], "no Gram form"),
        (["--loss", "huber", "--no_standardize"], "--no_standardize is for --loss squared"),
        (["--max_rows_in_memory", "-1"], "--max_rows_in_memory must be >= 0"),
        (["--read_threads", "-1"], "--read_threads must be >= 0"),
        (["--group_by", "rows"], "--group_by must be"),
        (["--group_by", "column:"], "--group_by must be"),
        (["--group_by", "column:x"], "must differ"),
        (["--learning_rate", "-0.1"], "--learning_rate must be a positive"),
        (["--learning_rate", "nan"], "--learning_rate must be a positive"),
        (["--max_steps", "0"], "--max_steps must be between 1 and"),
        (["--max_steps", str(2**63)], r"--max_steps must be between 1 and 9223372036854775807 \(2\*\*63 - 1\)"),
        (["--tolerance", "-1"], "--tolerance"),
        (["--dtype", "float16"], "--dtype must be one of"),
        (["--run_date", "2024-02-30"], "--run_date must be a date"),
        (["--run_date", "20240101"], "--run_date must be a date"),
        (["--loss_form", "exact"], "--loss_form must be one of gram, rows"),
        (["--batch_size", "0"], "--batch_size must be at least 1"),
        (["--output", "bigquery:my-project:fits.lines", "--incremental"], "need a Parquet table"),
        (["--output", "bigquery:my-project:fits.lines", "--warm_start"], "need a Parquet table"),
    ],
)
def test_invalid_values_raise_config_error(flags: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _config(*flags)


def test_input_and_output_are_required() -> None:
    with pytest.raises(ConfigError, match="--input is required"):
        config_from_options(PipelineOptions(["--output", "o"]))
    with pytest.raises(ConfigError, match="--output is required"):
        config_from_options(PipelineOptions(["--input", "i"]))
