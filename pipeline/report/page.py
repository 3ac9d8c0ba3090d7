"""The report as one self-contained HTML page: inline CSS, images as data URIs, no script.

Every dataset id, error message, path and option value is HTML-escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.report.charts import COLOURS, Chart
from pipeline.report.data import STATUSES, Comparison, FitModel, explain
from pipeline.report.samples import Panel

__all__ = ["MAX_LISTED", "MAX_PROBLEMS", "PageParts", "render_page"]

MAX_PROBLEMS = 300  # rows of the problem table; the rest are counted
MAX_LISTED = 50  # rows of each comparison table, ids of the new / gone lists

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #212121;
       max-width: 1260px; margin: 0 auto; padding: 12px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 2px; } h2 { font-size: 18px; margin: 28px 0 8px;
     border-bottom: 2px solid #e0e0e0; padding-bottom: 4px; } h3 { font-size: 15px; margin: 16px 0 6px; }
.verdict { font-size: 19px; margin: 6px 0; } .sub { color: #616161; }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; color: #fff; font-weight: 600;
         font-size: 12px; line-height: 19px; white-space: nowrap; }
.bar { display: flex; height: 16px; border-radius: 4px; overflow: hidden; margin: 8px 0 12px; }
.bar span { display: block; height: 100%; }
nav { margin: 8px 0; } nav a { margin-right: 16px; }
.facts { display: grid; grid-template-columns: max-content minmax(0, 1fr) max-content minmax(0, 1fr);
         gap: 2px 14px; font-size: 13px; }
.facts dt { color: #616161; } .facts dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; font-size: 13px; margin: 4px 0; }
th, td { padding: 3px 10px 3px 0; border-bottom: 1px solid #eeeeee; text-align: left; vertical-align: top; }
th { color: #616161; font-weight: 600; } .num { text-align: right; font-variant-numeric: tabular-nums; }
td.err { max-width: 640px; overflow-wrap: anywhere; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 12px; }
.card { border: 1px solid #e0e0e0; border-left-width: 5px; border-radius: 6px; padding: 6px 8px; }
.card img { display: block; max-width: 100%; height: auto; }
.card p { margin: 2px 0; font-size: 12px; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.note { background: #fff8e1; color: #6d4c00; padding: 3px 6px; border-radius: 4px; }
.good { color: #2e7d32; font-weight: 600; }
footer { margin-top: 32px; color: #9e9e9e; font-size: 12px; }
"""


@dataclass(frozen=True)
class PageParts:
    """Everything the page shows, computed beforehand.

    Attributes:
        run_date: The partition's date.
        rows: The partition's rows.
        manifest: Its manifest, or None.
        counts: Rows per status (:func:`pipeline.report.data.status_counts`).
        wall_time: ``(seconds or None, where it comes from)``.
        problems: Failed / diverged / not-converged rows, in display order.
        reasons: ``(status, reason, count)`` of the problems.
        charts: The distribution charts.
        worst: Panels of the worst fits by r², with their charts (None without points).
        random_ok: Panels of random ok datasets, likewise.
        comparison: The comparison with the previous partition, or None if there is none.
        generated: When the report was made (text).
    """

    run_date: str
    rows: list[dict]
    manifest: dict | None
    counts: dict[str, int]
    wall_time: tuple[float | None, str]
    problems: list[dict]
    reasons: list[tuple[str, str, int]]
    charts: list[Chart]
    worst: list[tuple[Panel, Chart | None]]
    random_ok: list[tuple[Panel, Chart | None]]
    comparison: Comparison | None
    generated: str


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float | int | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.6g}"


def _pct(value: float | None) -> str:
    if value is None:
        return "—"
    return "from 0" if math.isinf(value) else f"{value * 100:.3g}%"


def _badge(status: str) -> str:
    colour = COLOURS.get(status, "#546e7a")
    return f'<span class="badge" style="background:{colour}">{_e(status.replace("_", " "))}</span>'


def _table(headers: Iterable[str], body: Iterable[str], numeric: Iterable[int] = ()) -> str:
    numeric = set(numeric)
    head = "".join(f"<th{' class=num' if i in numeric else ''}>{_e(h)}</th>" for i, h in enumerate(headers))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _row(cells: Iterable[str], numeric: Iterable[int] = (), error: int | None = None) -> str:
    numeric = set(numeric)
    out = []
    for i, cell in enumerate(cells):
        cls = ' class="num"' if i in numeric else ' class="err"' if i == error else ""
        out.append(f"<td{cls}>{cell}</td>")
    return f"<tr>{''.join(out)}</tr>"


def verdict(counts: dict[str, int]) -> str:
    """The one-line summary: ``58 datasets: 50 ok, 8 failed — 8 need attention``."""
    total = sum(counts.values())
    parts = ", ".join(f"{n:,} {s.replace('_', ' ')}" for s, n in counts.items() if n)
    trouble = total - counts.get("ok", 0)
    tail = f"{trouble:,} need attention" if trouble else "every fit converged"
    return f"{total:,} datasets: {parts} — {tail}"


def _header(parts: PageParts) -> str:
    manifest = parts.manifest or {}
    options = manifest.get("options") or {}
    model = FitModel.from_manifest(manifest)
    total = max(1, sum(parts.counts.values()))
    bar = "".join(
        f'<span title="{_e(s)} {n}" style="width:{100 * n / total:.3f}%;background:{COLOURS.get(s, "#546e7a")}"></span>'
        for s, n in parts.counts.items()
        if n
    )
    badges = " ".join(f"{_badge(s)} {n:,}" for s, n in parts.counts.items() if n or s in STATUSES)
    seconds, how = parts.wall_time
    rows = manifest.get("rows") or {}
    facts = {
        "run date": parts.run_date,
        "run id": manifest.get("run_id") or ", ".join(sorted({r["run_id"] for r in parts.rows})),
        "input": manifest.get("input", "—"),
        "grouped by": options.get("group_by", "—"),
        "columns": f"x = {options.get('x_column', '?')}, y = {options.get('y_column', '?')}",
        "loss": model.describe_loss(),
        "weights": model.describe_weights(),
        "model": model.describe_model(),
        "wall time": f"{seconds:,.1f} s ({how})" if seconds is not None else how,
        "rows used": _num(rows.get("used")),
        "rows dropped": f"{_num(rows.get('dropped'))} (null/NaN/inf)"
        + (f"; {rows['null_key']:,} with a null key" if rows.get("null_key") else ""),
        "fit options": ", ".join(f"{k} = {v}" for k, v in (options.get("fit") or {}).items()) or "—",
        "versions": ", ".join(f"{k} {v}" for k, v in (manifest.get("versions") or {}).items()) or "—",
        "started": manifest.get("started_at", "—"),
        "finished": manifest.get("finished_at", "—"),
    }
    reused = sum(1 for r in parts.rows if r.get("reused_from"))
    if reused:
        facts["reused unchanged"] = f"{reused:,} rows copied from earlier runs (--incremental)"
    if not manifest:
        facts["manifest"] = "no _manifest.json in this partition (not committed by tapefit?)"
    changes = parts.comparison
    since = (
        f"vs run_date={_e(changes.previous_date)}: {len(changes.moved):,} moved, "
        f"{len(changes.status_changed):,} changed status, {len(changes.new):,} new, {len(changes.gone):,} gone"
        + (" (the fit changed)" if changes.fit_change else "")
        if changes
        else "no earlier partition to compare with"
    )
    return (
        f"<header id='summary'><h1>tapefit report · run_date={_e(parts.run_date)}</h1>"
        f"<p class='verdict'>{_e(verdict(parts.counts))}</p><div class='bar'>{bar}</div>"
        f"<p>{badges} <span class='sub'>· {since}</span></p>"
        "<nav><a href='#problems'>problems</a><a href='#distributions'>distributions</a>"
        "<a href='#fits'>fits vs closed form</a><a href='#changes'>changes</a></nav>"
        "<dl class='facts'>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts.items()) + "</dl></header>"
    )


def _problems(parts: PageParts) -> str:
    title = f"Failed, diverged and not converged ({len(parts.problems):,})"
    if not parts.problems:
        return (
            f"<section id='problems'><h2>{title}</h2>"
            "<p class='good'>No dataset failed, diverged or ran out of steps.</p></section>"
        )
    reasons = _table(
        ("status", "reason", "datasets"),
        (_row((_badge(s), _e(r), f"{n:,}"), numeric=(2,)) for s, r, n in parts.reasons),
        numeric=(2,),
    )
    shown = parts.problems[:MAX_PROBLEMS]
    detail = _table(
        ("dataset", "status", "steps", "rows used", "dropped", "error"),
        (
            _row(
                (
                    _e(r["dataset"]),
                    _badge(r["status"]),
                    _num(r["steps"]),
                    _num(r["n_rows"]),
                    _num(r["n_dropped"]),
                    _e(explain(r)),
                ),
                numeric=(2, 3, 4),
                error=5,
            )
            for r in shown
        ),
        numeric=(2, 3, 4),
    )
    more = (
        f"<p class='sub'>Showing {len(shown):,} of {len(parts.problems):,}; the table has them all.</p>"
        if len(parts.problems) > len(shown)
        else ""
    )
    return (
        f"<section id='problems'><h2>{title}</h2><h3>By reason</h3>{reasons}<h3>Datasets</h3>{detail}{more}</section>"
    )


def _distributions(parts: PageParts) -> str:
    images = "".join(
        f"<div class='card' style='border-left-color:#e0e0e0'><img src='{c.uri}' alt='{_e(c.alt)}'></div>"
        for c in parts.charts
    )
    return (
        "<section id='distributions'><h2>Distributions</h2><p class='sub'>Stacked by status; failed datasets have "
        f"no numbers and are not shown.</p><div class='grid'>{images}</div></section>"
    )


def _gap(value: float | None, optimum: float | None) -> str:
    if value is None or optimum is None:
        return ""
    return f" (closed form {optimum:.6g}, off by {abs(value - optimum) / (1 + abs(optimum)):.2g} rel)"


def _param(name: str, value: float | None, stderr: float | None, optimum: float | None, exact: bool) -> str:
    """``w = 1.5 ± 0.01 (closed form 1.5, off by 1e-15 rel)``: the gap only where the closed form is the fit's."""
    error = f" ± {_num(stderr)}" if stderr is not None and value is not None else ""
    return f"{name} = {_num(value)}{error}{_gap(value, optimum) if exact else ''}"


def _scale(panel: Panel) -> str | None:
    """The fit's scale in words: the residual standard error, or Huber's σ and its outliers."""
    row, model = panel.row, panel.model
    scale, outliers = row.get("scale"), row.get("n_outliers")
    if model.loss == "huber":
        parts = [f"Huber σ {_num(scale)}"] if scale is not None else []
        if outliers is not None:
            parts.append(f"{outliers:,} outliers (|r| > {model.epsilon:g}·σ)")
        return " · ".join(parts) or None
    return f"residual SE {_num(scale)}" if scale is not None else None


def _card(panel: Panel, chart: Chart | None) -> str:
    row, model = panel.row, panel.model
    colour = COLOURS.get(row["status"], "#546e7a")
    picture = f"<img src='{chart.uri}' alt='{_e(chart.alt)}'>" if chart else f"<p><b>{_e(row['dataset'])}</b></p>"
    optimum = panel.optimum or (None, None)
    lines = [
        f"{_badge(row['status'])} r² {_num(row['r2'])} · {_num(row['n_rows'])} rows · {_num(row['steps'])} steps",
        _e(_param("w", row["w"], row.get("w_stderr"), optimum[0], model.exact)),
        _e(
            _param("b", row["b"], row.get("b_stderr"), optimum[1], model.exact)
            if model.intercept or row["b"] is None
            else "b = 0 (through the origin)"
        ),
    ]
    scale = _scale(panel)
    if scale:
        lines.append(_e(scale))
    if not model.exact and panel.optimum is not None:
        w, b = panel.optimum
        lines.append(_e(f"{model.reference}: w = {w:.6g}, b = {b:.6g}"))
    if panel.note:
        lines.append(f"<span class='note'>{_e(panel.note)}</span>")
    text = "".join(f"<p>{line}</p>" for line in lines)
    return f"<div class='card' style='border-left-color:{colour}'>{picture}{text}</div>"


def _fits_intro(model: FitModel) -> tuple[str, str]:
    """The fits section's title and what its lines and colours mean, for this fit."""
    points = (
        "Points: the source data read again (a random sample of at most a few thousand). Solid line: tapefit's w, b."
    )
    weighted = f" with the weights of column {model.weights!r}, re-read with the data," if model.weights else ""
    if model.exact:
        return "Fits against the closed form", (
            f"{points} Dashed black line: the exact {model.reference} optimum{weighted} computed in float64. "
            "Where gradient descent landed right, the two lines coincide."
        )
    kind = ("weighted " if model.weights else "") + "least squares" + ("" if model.intercept else " through the origin")
    return "Fits, with least squares for comparison", (
        f"{points} Dashed black line: {kind}{weighted} for comparison only: the Huber objective has no closed "
        "form, and where there are outliers the robust fit should differ from it. Orange points: outliers, "
        f"|y − w·x − b| > ε·σ (ε = {model.epsilon:g}), the rows Huber's loss counts linearly."
    )


def _fits(parts: PageParts) -> str:
    def grid(title: str, cards: list[tuple[Panel, Chart | None]], empty: str) -> str:
        body = "".join(_card(p, c) for p, c in cards) if cards else f"<p class='sub'>{empty}</p>"
        return f"<h3>{title}</h3><div class='grid'>{body}</div>"

    title, intro = _fits_intro(FitModel.from_manifest(parts.manifest))
    return (
        f"<section id='fits'><h2>{_e(title)}</h2><p class='sub'>{_e(intro)}</p>"
        + grid(f"Worst fits by r² ({len(parts.worst)})", parts.worst, "No dataset has an r².")
        + grid(f"Random ok datasets ({len(parts.random_ok)})", parts.random_ok, "No other ok dataset.")
        + "</section>"
    )


def _ids(title: str, ids: list[str]) -> str:
    shown = ", ".join(_e(i) for i in ids[:MAX_LISTED])
    more = f", … and {len(ids) - MAX_LISTED:,} more" if len(ids) > MAX_LISTED else ""
    return f"<h3>{title} ({len(ids):,})</h3><p>{shown or '<span class=sub>none</span>'}{more}</p>"


def _changes(parts: PageParts) -> str:
    changes = parts.comparison
    if changes is None:
        return (
            "<section id='changes'><h2>Changes</h2>"
            "<p class='sub'>No earlier partition in this table: nothing to compare with.</p></section>"
        )
    run = f" (run {_e(changes.previous_run_id)})" if changes.previous_run_id else ""
    intro = (
        f"<p>Compared with run_date={_e(changes.previous_date)}{run}: {changes.common:,} datasets in both. "
        f"Moved means w or b changed by more than {changes.threshold * 100:g}% of its previous value.</p>"
    )
    if changes.fit_change:
        intro += (
            f"<p class='note'>The fit itself changed ({_e(changes.fit_change)}): w and b are not like for like, "
            "and moves below are expected.</p>"
        )
    moved = _table(
        ("dataset", "status", "w before", "w now", "w change", "b before", "b now", "b change"),
        (
            _row(
                (
                    _e(c.dataset),
                    _badge(c.new["status"]),
                    _num(c.old["w"]),
                    _num(c.new["w"]),
                    _pct(c.rel_w),
                    _num(c.old["b"]),
                    _num(c.new["b"]),
                    _pct(c.rel_b),
                ),
                numeric=(2, 3, 4, 5, 6, 7),
            )
            for c in changes.moved[:MAX_LISTED]
        ),
        numeric=(2, 3, 4, 5, 6, 7),
    )
    status = _table(
        ("dataset", "before", "now", "error now"),
        (
            _row((_e(c.dataset), _badge(c.old["status"]), _badge(c.new["status"]), _e(c.new["error"] or "")), error=3)
            for c in changes.status_changed[:MAX_LISTED]
        ),
    )
    capped = lambda items: f" — the {MAX_LISTED} largest shown" if len(items) > MAX_LISTED else ""  # noqa: E731
    return (
        f"<section id='changes'><h2>Changes since {_e(changes.previous_date)}</h2>{intro}"
        f"<h3>Moved ({len(changes.moved):,}{capped(changes.moved)})</h3>"
        + (moved if changes.moved else "<p class='sub'>none</p>")
        + f"<h3>Status changed ({len(changes.status_changed):,})</h3>"
        + (status if changes.status_changed else "<p class='sub'>none</p>")
        + _ids("New datasets", changes.new)
        + _ids("Gone datasets", changes.gone)
        + "</section>"
    )


def render_page(parts: PageParts) -> str:
    """Return the whole report as one HTML document.

    Args:
        parts: What to show.

    Returns:
        The page, self-contained (no external resources, no script).
    """
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>tapefit report · run_date={_e(parts.run_date)}</title><style>{_CSS}</style></head><body>"
        + _header(parts)
        + _problems(parts)
        + _distributions(parts)
        + _fits(parts)
        + _changes(parts)
        + f"<footer>Made by tapefit report at {_e(parts.generated)}.</footer></body></html>\n"
    )
