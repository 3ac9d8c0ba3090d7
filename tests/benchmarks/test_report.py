"""Relative differences, result rows, targets and the table."""

from __future__ import annotations

import math

import pytest

from benchmarks.contenders import Contender, Outcome
from benchmarks.report import evaluate_targets, format_table, rel_diff, result_row
from benchmarks.results import Fit
from tests.benchmarks.conftest import TINY


def test_rel_diff():
    assert rel_diff(1.0 + 1e-12, 1.0) == pytest.approx(1e-12)
    assert rel_diff(-2.0, -1.0) == 1.0
    assert rel_diff(0.0, 0.0) == 0.0
    assert rel_diff(1e-290, 0.0) == pytest.approx(1e10)  # divided by a tiny floor, never by zero
    assert rel_diff(None, 1.0) == math.inf
    assert rel_diff(float("nan"), 1.0) == math.inf


def test_report_rows_and_targets():
    workload = TINY["file"]
    ref = {i: Fit(2.0, 1.0, 30) for i in workload.ids()}
    outcomes = {
        "duckdb": Outcome("ok", {"wall_s": 1.0, "max_rss_mb": 100.0}, ref),
        "tapefit-x": Outcome("ok", {"wall_s": 2.5, "max_rss_mb": 700.0}, {**ref, "g000/d000000": Fit(2.0, 1.1, 30)}),
        "eager": Outcome("ok", {"wall_s": 5.0}, {i: Fit(2.0, 1.0, 30, "ok", 0.25) for i in workload.ids()[:2]}),
    }
    kinds = {"duckdb": "baseline", "tapefit-x": "tapefit", "eager": "eager"}
    rows = [result_row(workload, Contender(n, kinds[n]), o, outcomes) for n, o in outcomes.items()]
    assert rows[1]["ratio_vs_duckdb"] == 2.5 and rows[1]["max_rel_diff_b"] == pytest.approx(0.1)
    assert rows[2]["speedup_per_dataset"]["tapefit-x"] == pytest.approx(0.25 / (2.5 / 7))
    met = {(t["target"], t["contender"]): t["met"] for t in evaluate_targets(rows)}
    assert met == {
        ("wall/duckdb", "tapefit-x"): False,
        ("peak RSS MiB", "tapefit-x"): True,  # 1.5 GB a process, on every workload
        ("rel diff w,b (all ok)", "tapefit-x"): False,
        ("eager/tapefit-x per dataset", "eager"): False,
    }
    assert "tapefit-x" in format_table(rows)


def test_huber_is_compared_with_the_default_loss_and_the_row_form_probe_is_a_target():
    workload = TINY["file"]
    fits = {i: Fit(2.0, 1.0, 30) for i in workload.ids()}
    outcomes = {
        "duckdb": Outcome("ok", {"wall_s": 1.0}, fits),
        "tapefit-mp2": Outcome("ok", {"wall_s": 3.0}, fits),
        "tapefit-mp2-huber": Outcome("ok", {"wall_s": 9.0}, {i: Fit(2.5, 0.0, 30) for i in workload.ids()}),
    }
    huber = Contender("tapefit-mp2-huber", "tapefit", ("--loss", "huber"))
    row = result_row(workload, huber, outcomes["tapefit-mp2-huber"], outcomes)
    assert row["ratio_vs_default_loss"] == 3.0 and row["max_rel_diff_w"] is None  # another objective
    assert "w, b not compared" in row["notes"] and "3.00x tapefit-mp2 (squared loss)" in row["notes"]
    # each Huber run is compared with the same runner's default-loss run
    outcomes["tapefit-inproc"] = Outcome("ok", {"wall_s": 2.0}, fits)
    outcomes["tapefit-inproc-huber"] = Outcome("ok", {"wall_s": 5.0}, outcomes["tapefit-mp2-huber"].fits)
    inproc = Contender("tapefit-inproc-huber", "tapefit", ("--loss", "huber"))
    assert result_row(workload, inproc, outcomes["tapefit-inproc-huber"], outcomes)["ratio_vs_default_loss"] == 2.5
    probe = {"rows": 10, "steps": 1, "losses": {"squared": {"row_steps_per_s": 4e8}, "huber": {"row_steps_per_s": 1e8}}}
    met = {(t["target"], t["contender"]): t["met"] for t in evaluate_targets([row], probe)}
    assert met == {
        ("huber/default loss", "tapefit-mp2-huber"): True,
        ("row-steps/s, one core", "row form squared"): True,
        ("row-steps/s, one core", "row form huber"): False,
    }
