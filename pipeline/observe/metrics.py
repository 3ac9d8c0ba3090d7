"""Reading a finished run's Beam metrics (namespace ``tapefit``) for the summary and manifest.

Counters: ``datasets_<status>``, ``rows_read``, ``rows_used``, ``rows_dropped``,
``null_key_rows``. Distributions: ``steps`` (gradient-descent updates per fitted
dataset) and ``fit_us`` (microseconds per dataset fit). Runners that report no metrics
give ``None``; the launcher then relies on the manifest alone.
"""

from __future__ import annotations

import logging

from pipeline.fit.result import Status
from pipeline.observe.counters import NAMESPACE

__all__ = ["collect_metrics", "counts_from_metrics", "format_metrics"]


def _value(result: object) -> object:
    committed = getattr(result, "committed", None)
    return committed if committed is not None else getattr(result, "attempted", None)


def collect_metrics(result: object) -> dict | None:
    """Return the run's ``tapefit`` metrics, summed over steps, or ``None``.

    Args:
        result: A finished ``PipelineResult``.

    Returns:
        ``{"counters": {name: int}, "distributions": {name: {count, sum, min, max, mean}}}``,
        or ``None`` when the runner reports no metrics.
    """
    from apache_beam.metrics.metric import MetricsFilter

    try:
        found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    except Exception:  # noqa: BLE001 (a runner without metrics support)
        logging.debug("no metrics from this runner", exc_info=True)
        return None
    counters: dict[str, int] = {}
    for item in found.get("counters", []):
        value = _value(item)
        if value is not None:
            counters[item.key.metric.name] = counters.get(item.key.metric.name, 0) + int(value)
    distributions: dict[str, dict] = {}
    for item in found.get("distributions", []):
        value = _value(item)
        if value is None or not value.count:
            continue
        merged = distributions.setdefault(
            item.key.metric.name, {"count": 0, "sum": 0, "min": value.min, "max": value.max}
        )
        merged["count"] += value.count
        merged["sum"] += value.sum
        merged["min"] = min(merged["min"], value.min)
        merged["max"] = max(merged["max"], value.max)
    for merged in distributions.values():
        merged["mean"] = merged["sum"] / merged["count"]
    if not counters and not distributions:
        return None
    return {"counters": dict(sorted(counters.items())), "distributions": dict(sorted(distributions.items()))}


def counts_from_metrics(metrics: dict) -> dict:
    """Counts per status in the manifest's ``counts`` shape, from the status counters."""
    counters = metrics["counters"]
    counts = {status: counters.get(f"datasets_{status}", 0) for status in Status.ALL}
    return {"datasets": sum(counts.values()), **counts}


def format_metrics(metrics: dict) -> list[str]:
    """Summary lines for the metrics that the manifest counts do not already show."""
    counters, dists = metrics["counters"], metrics["distributions"]
    lines = []
    if "rows_read" in counters:
        lines.append(f"  rows read {counters['rows_read']:,} (metrics, namespace {NAMESPACE})")
    if "steps" in dists:
        steps = dists["steps"]
        lines.append(f"  steps per fit: min {steps['min']} · mean {steps['mean']:.1f} · max {steps['max']}")
    if "fit_us" in dists:
        fit = dists["fit_us"]
        lines.append(
            f"  fit time per dataset: mean {fit['mean'] / 1000:.2f} ms · max {fit['max'] / 1000:.2f} ms"
            f" · total {fit['sum'] / 1e6:.1f} s"
        )
    return lines
