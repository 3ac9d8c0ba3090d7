"""The report's pictures, drawn with matplotlib and returned as ``data:image/png`` URIs.

Figures are plain :class:`matplotlib.figure.Figure` objects rendered by the Agg
backend: no pyplot state, no display needed. matplotlib is imported only when a
chart is drawn (it is the optional ``tapefit[report]`` extra).
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline.report.data import FitModel
from pipeline.report.samples import Panel

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["COLOURS", "OUTLIER_COLOUR", "Chart", "distribution_charts", "scatter_chart"]

COLOURS = {"ok": "#2e7d32", "not_converged": "#ef8f00", "diverged": "#8e24aa", "failed": "#c62828"}
OUTLIER_COLOUR = "#ff6d00"  # Huber outliers in the scatter panels (orange, apart from every status colour)
_NUMERIC_STATUSES = ("ok", "not_converged", "diverged")
_DPI = 100


@dataclass(frozen=True)
class Chart:
    """One rendered picture.

    Attributes:
        title: A short caption.
        alt: The image's text alternative.
        uri: The PNG as a ``data:image/png;base64,...`` URI.
    """

    title: str
    alt: str
    uri: str


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    figure.set_facecolor("white")
    return figure


def _png_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _by_status(rows: list[dict], column: str) -> dict[str, np.ndarray]:
    """Finite values of ``column`` per status (statuses without any left out)."""
    values = {}
    for status in _NUMERIC_STATUSES:
        found = np.array([r[column] for r in rows if r["status"] == status and r[column] is not None], dtype=float)
        found = found[np.isfinite(found)]
        if found.size:
            values[status] = found
    return values


def _empty(axes: Axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color="#666666")
    axes.set_xticks([])
    axes.set_yticks([])


def _stacked(axes: Axes, values: dict[str, np.ndarray], bins: np.ndarray) -> None:
    from matplotlib.ticker import MaxNLocator

    statuses = list(values)
    axes.hist(
        [values[s] for s in statuses],
        bins=bins,
        stacked=True,
        color=[COLOURS[s] for s in statuses],
        label=[s.replace("_", " ") for s in statuses],
        edgecolor="white",
        linewidth=0.4,
    )
    axes.set_ylabel("datasets")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    if len(statuses) > 1:
        axes.legend(fontsize=8, frameon=False)


def _signed_histogram(axes: Axes, values: dict[str, np.ndarray]) -> None:
    """A histogram that stays readable when values span many decades and both signs (symlog axis)."""
    from matplotlib.scale import SymmetricalLogTransform

    everything = np.concatenate(list(values.values()))
    magnitudes = np.abs(everything[everything != 0])
    low, high = float(everything.min()), float(everything.max())
    if low == high:
        _stacked(axes, values, np.array([low - 0.5, low + 0.5]) if low == 0 else low + np.array([-0.5, 0.5]) * abs(low))
        return
    if magnitudes.size == 0 or magnitudes.max() / magnitudes.min() < 1e3:
        _stacked(axes, values, np.linspace(low, high, 31))
        return
    threshold = float(10 ** math.floor(math.log10(np.percentile(magnitudes, 5))))
    transform = SymmetricalLogTransform(10, threshold, 1.0)
    edges = transform.inverted().transform(np.linspace(*transform.transform(np.array([low, high])), 31))
    edges[0], edges[-1] = low, high
    _stacked(axes, values, edges)
    axes.set_xscale("symlog", linthresh=threshold)
    axes.set_xticks(_symlog_ticks(threshold, low, high))
    axes.minorticks_off()
    axes.annotate(
        f"symmetric log scale, linear within ±{threshold:g}",
        (0.0, -0.3),
        xycoords="axes fraction",
        fontsize=7,
        color="#666666",
    )


def _symlog_ticks(threshold: float, low: float, high: float) -> list[float]:
    """0 and every k-th power of ten from the data's largest down to above ``threshold``, about 3 a side."""
    first = round(math.log10(threshold))
    last = math.ceil(math.log10(max(abs(low), abs(high))))
    powers = [10.0**e for e in range(last, first, -max(1, math.ceil((last - first) / 3)))] or [threshold]
    return sorted([-p for p in powers if -p >= low] + [0.0] + [p for p in powers if p <= high])


def _log_histogram(axes: Axes, values: dict[str, np.ndarray]) -> int:
    """Histogram of positive values on a log axis; returns how many values ≤ 0 were left out."""
    positive = {s: v[v > 0] for s, v in values.items() if (v > 0).any()}
    left_out = sum(int((v <= 0).sum()) for v in values.values())
    if not positive:
        _empty(axes, "no positive values")
        return left_out
    everything = np.concatenate(list(positive.values()))
    low, high = np.log10(everything.min()), np.log10(everything.max())
    edges = np.logspace(low - 0.5, high + 0.5, 31) if low == high else np.logspace(low, high, 31)
    _stacked(axes, positive, edges)
    axes.set_xscale("log")
    return left_out


def _r2_histogram(axes: Axes, values: dict[str, np.ndarray]) -> int:
    """Histogram of r² with values below −1 shown at −1; returns how many were clipped."""
    clipped = sum(int((v < -1).sum()) for v in values.values())
    shown = {s: np.maximum(v, -1.0) for s, v in values.items()}
    low = min(float(v.min()) for v in shown.values())
    _stacked(axes, shown, np.linspace(low, 1.0, 31) if low < 1.0 else np.array([0.99, 1.0]))
    return clipped


def _steps_histogram(axes: Axes, values: dict[str, np.ndarray], max_steps: int | None) -> None:
    everything = np.concatenate(list(values.values()))
    top = max(float(everything.max()), float(max_steps or 0), 1.0)
    width = max(1.0, math.ceil(top / 40))
    _stacked(axes, values, np.arange(0.0, top + 2 * width, width))
    if max_steps:
        axes.axvline(max_steps, color="#555555", linestyle="--", linewidth=1)
        axes.annotate(
            "max_steps ", (max_steps, 0.95), xycoords=("data", "axes fraction"), fontsize=8, va="top", ha="right"
        )
    common, count = np.unique(everything, return_counts=True)
    most, size = int(common[count.argmax()]), everything.size
    detail = f"all at {most}" if count.max() == size else f"{count.max()} at {most}" if count.max() * 2 > size else ""
    axes.set_title(f"gradient-descent steps (n = {size}{', ' + detail if detail else ''})", fontsize=9)


def _loss_title(model: FitModel) -> str:
    if model.loss == "huber":
        return "final loss (Huber objective per unit weight)"
    return "final loss (weighted mean squared error)" if model.weights else "final loss (mean squared error)"


def distribution_charts(rows: list[dict], max_steps: int | None, model: FitModel | None = None) -> list[Chart]:
    """Return histograms of w, b, final_loss (log), r² and steps, stacked by status.

    Args:
        rows: The partition's rows (failed rows have no numbers and are left out).
        max_steps: The run's ``--max_steps``, marked on the steps chart, if known.
        model: The fit (it names the final loss); least squares if None.

    Returns:
        One chart each, in that order.
    """
    charts = []
    for column, title in (
        ("w", "slope w"),
        ("b", "intercept b"),
        ("final_loss", _loss_title(model or FitModel())),
        ("r2", "r²"),
        ("steps", "gradient-descent steps"),
    ):
        figure = _figure(4.2, 2.8)
        axes = figure.subplots()
        values = _by_status(rows, column)
        total = sum(v.size for v in values.values())
        note = ""
        if not values:
            _empty(axes, "no values (every dataset failed?)")
        elif column in ("w", "b"):
            _signed_histogram(axes, values)
        elif column == "final_loss":
            left_out = _log_histogram(axes, values)
            note = f"; {left_out} at 0 not shown" if left_out else ""
        elif column == "r2":
            clipped = _r2_histogram(axes, values)
            note = f"; {clipped} below −1 shown at −1" if clipped else ""
        else:
            _steps_histogram(axes, values, max_steps)
        if column != "steps" or not values:
            axes.set_title(f"{title} (n = {total}{note})", fontsize=9)
        axes.tick_params(labelsize=8)
        charts.append(Chart(title, f"histogram of {title} over {total} datasets{note}", _png_uri(figure)))
    return charts


def scatter_chart(panel: Panel) -> Chart | None:
    """Return a scatter of the panel's points with the fitted and the reference lines, or None without points.

    Huber fits draw their outliers (``|r| > ε·σ``) in :data:`OUTLIER_COLOUR`, with a legend entry.
    """
    if not panel.x.size:
        return None
    from matplotlib.ticker import MaxNLocator

    row, model = panel.row, panel.model
    figure = _figure(3.6, 2.6)
    axes = figure.subplots()
    inside, outside = ~panel.outliers, panel.outliers
    axes.scatter(
        panel.x[inside], panel.y[inside], s=5, alpha=0.35, color="#607d8b", linewidths=0,
        label=f"data ({int(inside.sum()):,})",
    )  # fmt: skip
    marked = int(outside.sum())
    if marked:
        axes.scatter(
            panel.x[outside], panel.y[outside], s=9, alpha=0.8, color=OUTLIER_COLOUR, linewidths=0,
            label=f"|r| > {model.epsilon:g}·σ ({marked:,})",
        )  # fmt: skip
    span = np.array([panel.x.min(), panel.x.max()])
    if row["w"] is not None and row["b"] is not None:
        colour = COLOURS.get(row["status"], "#1565c0")
        label = "tapefit fit" + (f" ({model.loss})" if not model.exact else "")
        axes.plot(span, row["w"] * span + row["b"], color=colour, linewidth=3.5, alpha=0.75, label=label)
        low, high = float(panel.y.min()), float(panel.y.max())
        pad = 0.1 * (high - low or abs(high) or 1.0)
        axes.set_ylim(low - pad, high + pad)  # a wild line must not flatten the data
    if panel.optimum is not None:  # drawn last, thin and dashed: it shows through a fit that landed on it
        w, b = panel.optimum
        label = "closed form" if model.exact else "least squares"
        axes.plot(span, w * span + b, color="black", linestyle=(0, (3, 2)), linewidth=1.2, label=label)
    axes.xaxis.set_major_locator(MaxNLocator(5))
    axes.legend(fontsize=7, frameon=False, loc="best", markerscale=2)
    axes.tick_params(labelsize=7)
    name = row["dataset"] if len(row["dataset"]) <= 44 else row["dataset"][:43] + "…"
    axes.set_title(name, fontsize=9)
    reference = "the closed-form line" if model.exact else "the least-squares line for comparison"
    alt = f"scatter of {row['dataset']} with the fitted line and {reference}"
    if model.loss == "huber":
        alt += f"; {marked:,} outliers marked"
    return Chart(row["dataset"], alt, _png_uri(figure))
