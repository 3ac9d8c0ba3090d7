"""Progress lines: throttled worker tickers, a quiet start, then one line per interval."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.observe.progress import ENV, ProgressReporter, ProgressTicker, count_done, report_progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_ticker_publishes_at_most_once_a_second(tmp_path: Path) -> None:
    clock = FakeClock()
    ticker = ProgressTicker(str(tmp_path), clock)
    ticker.tick()  # the first tick publishes at once
    assert count_done(str(tmp_path)) == 1
    for _ in range(50):
        ticker.tick()
        clock.now += 0.01
    assert count_done(str(tmp_path)) == 1  # half a second: nothing rewritten
    clock.now += 0.6
    ticker.tick()
    assert count_done(str(tmp_path)) == 52
    assert len(os.listdir(tmp_path)) == 1  # one file per ticker, rewritten in place


def test_tickers_add_up_and_none_is_a_no_op(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    for _ in range(3):
        ProgressTicker(str(tmp_path)).tick()
    assert count_done(str(tmp_path)) == 3
    (tmp_path / "half-written.tmp").write_text("999")
    assert count_done(str(tmp_path)) == 3
    monkeypatch.delenv(ENV, raising=False)
    ProgressTicker.from_environment().tick()  # no folder: nothing happens
    monkeypatch.setenv(ENV, str(tmp_path))
    ProgressTicker.from_environment().tick()
    assert count_done(str(tmp_path)) == 4
    assert count_done(str(tmp_path / "missing")) == 0


def test_reporter_is_quiet_for_short_runs_then_reports_every_interval() -> None:
    clock, done = FakeClock(), [0]
    reporter = ProgressReporter(total=2000, done=lambda: done[0], interval=10.0, clock=clock)
    for second in range(1, 10):
        clock.now = 100.0 + second
        done[0] = 50 * second
        assert reporter.poll() is None
    clock.now, done[0] = 110.0, 500
    assert reporter.poll() == "tapefit: progress 500/2,000 datasets (25%) after 10 s · 50.0/s · about 30 s left"
    clock.now = 115.0
    assert reporter.poll() is None
    clock.now, done[0] = 120.5, 2000
    assert reporter.poll() == "tapefit: progress 2,000/2,000 datasets (100%) after 20 s · 97.6/s"


def test_reporter_without_a_total() -> None:
    clock = FakeClock()
    reporter = ProgressReporter(total=None, done=lambda: 30, interval=10.0, clock=clock)
    clock.now += 10
    assert reporter.poll() == "tapefit: progress 30 datasets after 10 s · 3.0/s"


def test_report_progress_thread_prints_and_stops(tmp_path: Path) -> None:
    lines: list[str] = []
    ProgressTicker(str(tmp_path)).tick()
    with report_progress(str(tmp_path), 4, interval=0.05, write=lines.append, tick_s=0.01):
        import time

        time.sleep(0.3)
    assert lines and lines[0].startswith("tapefit: progress 1/4 datasets (25%)")
    count = len(lines)
    with report_progress(str(tmp_path), 4, interval=0, write=lines.append):
        pass  # 0 turns it off
    assert len(lines) == count
