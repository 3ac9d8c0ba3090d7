"""``{run_date}`` placeholders in --input, and the nightly options around them."""

from __future__ import annotations

import datetime as dt

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.config.errors import ConfigError
from pipeline.config.options import config_from_options
from pipeline.config.run_date import fill_run_date, has_placeholder

DAY = dt.date(2026, 1, 2)
NOW = dt.datetime(2026, 11, 25, 23, 59, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(
    ("pattern", "filled"),
    [
        ("drops/{run_date}", "drops/2026-01-02"),
        ("drops/{run_date:%Y/%m/%d}/*.parquet", "drops/2026/01/02/*.parquet"),
        ("gs://b/dt={run_date:%Y%m%d}/", "gs://b/dt=20260102/"),
        ("a/{run_date}/b/{run_date:%j}", "a/2026-01-02/b/002"),
        ("plain/[ab]*.parquet", "plain/[ab]*.parquet"),
        ("odd/{{braces}}/{run_date}", "odd/{braces}/2026-01-02"),
    ],
)
def test_fill(pattern: str, filled: str) -> None:
    assert fill_run_date(pattern, DAY) == filled


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("drops/{date}", "unknown placeholder {date}"),
        ("drops/{run_date!r}", "unknown placeholder {run_date!r}"),
        ("drops/{run_date:Ymd}", "needs strftime codes"),
        ("drops/{run_date", "expected '}'"),
        ("drops/run_date}", "Single '}'"),
    ],
)
def test_bad_placeholders(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}").replace("!", "!")):
        fill_run_date(pattern, DAY)


def test_has_placeholder() -> None:
    assert has_placeholder("x/{run_date}") and not has_placeholder("x/{{literal}}")


def _config(*flags: str):  # noqa: ANN202
    return config_from_options(PipelineOptions(["--output", "out", *flags]), now=NOW)


def test_config_fills_input_from_run_date_and_keeps_the_template() -> None:
    config = _config("--input", "drops/{run_date:%Y/%m/%d}", "--run_date", "2026-01-02")
    assert config.input == "drops/2026/01/02"
    assert config.input_template == "drops/{run_date:%Y/%m/%d}"
    assert _config("--input", "drops/{run_date}").input == "drops/2026-11-25"  # default date: today (UTC)
    assert _config("--input", "drops").input_template is None


def test_config_rejects_bad_placeholder_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^--input 'in/\{day\}': unknown placeholder \{day\}"):
        _config("--input", "in/{day}")


@pytest.mark.parametrize("value", ["-0.1", "1.5", "nan"])
def test_max_failed_fraction_must_be_a_share(value: str) -> None:
    with pytest.raises(ConfigError, match="--max_failed_fraction must be between 0 and 1"):
        _config("--input", "in", "--max_failed_fraction", value)


def test_nightly_defaults_and_values() -> None:
    config = _config("--input", "in")
    assert (config.max_failed_fraction, config.progress_interval) == (1.0, 10.0)
    config = _config("--input", "in", "--max_failed_fraction", "0", "--progress_interval", "0")
    assert (config.max_failed_fraction, config.progress_interval) == (0.0, 0.0)
    with pytest.raises(ConfigError, match="--progress_interval"):
        _config("--input", "in", "--progress_interval", "-1")
