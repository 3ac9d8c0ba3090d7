"""``tapefit report``: one self-contained HTML page that shows a night's fits at a glance.

* ``data``    - counts, wall time, problems, panel choice, comparison (plain Python);
* ``samples`` - the source data of a few datasets read again, with the closed-form line;
* ``charts``  - matplotlib pictures as ``data:`` URIs (the optional ``tapefit[report]`` extra);
* ``page``    - the HTML page.

No Beam pipeline and no TensorFlow: the report reads a committed partition with
pyarrow, and source files through :mod:`pipeline.read.parquet`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from pipeline.table.partitions import find_partition, load_partition, previous_partition

__all__ = ["ReportSettings", "build_report"]


@dataclass(frozen=True)
class ReportSettings:
    """What the report shows beyond the defaults.

    Attributes:
        panels: How many worst fits, and how many random ok datasets, get a scatter panel.
        change_threshold: Relative change of w or b above which a dataset counts as moved.
        max_points: Most points drawn per scatter panel (a seeded random sample).
        seed: Seed of every random choice, so the same table gives the same report.
    """

    panels: int = 6
    change_threshold: float = 0.01
    max_points: int = 2000
    seed: int = 0


def build_report(table: Path, run_date: str | None = None, settings: ReportSettings | None = None) -> tuple[str, Path]:
    """Build the HTML report of one partition.

    Args:
        table: The output table directory (local).
        run_date: The partition, ``YYYY-MM-DD``; None for the latest.
        settings: Panel count, change threshold, sampling; defaults if None.

    Returns:
        The HTML page and the partition folder it describes.

    Raises:
        pipeline.table.partitions.MissingError: if the table or partition does not exist or holds no rows.
    """
    from pipeline.report import charts, data, page, samples

    settings = settings or ReportSettings()
    folder = find_partition(table, run_date)
    rows, manifest = load_partition(folder)
    comparison = None
    previous = previous_partition(folder)
    if previous is not None:
        try:
            old_rows, old_manifest = load_partition(previous)
        except Exception:  # noqa: BLE001 (an unreadable older partition only loses the comparison)
            old_rows, old_manifest = None, None
        if old_rows is not None:
            old_run = (old_manifest or {}).get("run_id") or (old_rows[0]["run_id"] if old_rows else None)
            date = previous.name.split("=", 1)[1]
            comparison = data.compare(rows, old_rows, date, old_run, settings.change_threshold)
            change = data.FitModel.from_manifest(manifest).differences(data.FitModel.from_manifest(old_manifest))
            comparison = dataclasses.replace(comparison, fit_change=change)
    worst, random_ok = data.pick_panels(rows, settings.panels, settings.seed)
    loaded = samples.load_panels(worst + random_ok, manifest, settings.max_points, settings.seed)
    drawn = [(panel, charts.scatter_chart(panel)) for panel in loaded]
    max_steps = (((manifest or {}).get("options") or {}).get("fit") or {}).get("max_steps")
    model = data.FitModel.from_manifest(manifest)
    parts = page.PageParts(
        run_date=folder.name.split("=", 1)[1],
        rows=rows,
        manifest=manifest,
        counts=data.status_counts(rows),
        wall_time=data.wall_time(manifest, rows),
        problems=data.problems(rows),
        reasons=data.error_reasons(rows),
        charts=charts.distribution_charts(rows, max_steps, model),
        worst=drawn[: len(worst)],
        random_ok=drawn[len(worst) :],
        comparison=comparison,
        generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
    return page.render_page(parts), folder
