"""Reading a run's Beam metrics: counters summed over steps, distributions merged."""

from __future__ import annotations

from apache_beam.metrics.cells import DistributionData, DistributionResult
from apache_beam.metrics.execution import MetricKey, MetricResult
from apache_beam.metrics.metricbase import MetricName

from pipeline.observe.metrics import collect_metrics, counts_from_metrics, format_metrics


def _counter(step: str, name: str, committed: int | None, attempted: int) -> MetricResult:
    return MetricResult(MetricKey(step, MetricName("tapefit", name)), committed, attempted)


def _distribution(step: str, name: str, total: int, count: int, low: int, high: int) -> MetricResult:
    result = DistributionResult(DistributionData(total, count, low, high))
    return MetricResult(MetricKey(step, MetricName("tapefit", name)), result, result)


class FakeResult:
    def __init__(self, found: dict | Exception) -> None:
        self._found = found

    def metrics(self) -> FakeResult:
        return self

    def query(self, _filter: object) -> dict:
        if isinstance(self._found, Exception):
            raise self._found
        return self._found


def test_collect_sums_steps_and_prefers_committed() -> None:
    found = {
        "counters": [
            _counter("Fit", "datasets_ok", 40, 41),
            _counter("FailedRows", "datasets_failed", 8, 8),
            _counter("Fit", "datasets_failed", 2, 2),
            _counter("Fit", "rows_read", None, 900),  # runner without committed values
        ],
        "distributions": [
            _distribution("Fit", "steps", 1270, 10, 120, 130),
            _distribution("Fit2", "steps", 127, 1, 127, 127),
            _distribution("Fit", "fit_us", 0, 0, 0, 0),  # empty: left out
        ],
        "gauges": [],
    }
    metrics = collect_metrics(FakeResult(found))
    assert metrics["counters"] == {"datasets_failed": 10, "datasets_ok": 40, "rows_read": 900}
    assert metrics["distributions"] == {"steps": {"count": 11, "sum": 1397, "min": 120, "max": 130, "mean": 127.0}}
    assert counts_from_metrics(metrics) == {
        "datasets": 50, "ok": 40, "not_converged": 0, "diverged": 0, "failed": 10,
    }  # fmt: skip
    text = "\n".join(format_metrics(metrics))
    assert "rows read 900" in text and "steps per fit: min 120 · mean 127.0 · max 130" in text


def test_runner_without_metrics_gives_none() -> None:
    assert collect_metrics(FakeResult(NotImplementedError("no metrics"))) is None
    assert collect_metrics(FakeResult({"counters": [], "distributions": []})) is None
