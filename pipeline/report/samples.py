"""Reading the source data of a few datasets again, for the report's scatter panels.

Each panel gets its dataset's valid (finite) points, sampled to at most ``max_points``
with a fixed seed, and the closed-form least-squares line computed in float64 on all
of them: the optimum that gradient descent should have reached. Files are read with
:mod:`pipeline.read.parquet` (Beam's ``FileSystems``), in the layout the manifest records;
a long table (``column:NAME``) is read once for all panels. A source that cannot be
read gives a panel with a note instead of points, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Panel", "closed_form", "load_panels"]


@dataclass(frozen=True)
class Panel:
    """One dataset's data as re-read now, ready to plot.

    Attributes:
        row: The dataset's row of the output table.
        x: Sampled finite x values (empty when the data could not be read).
        y: The matching y values.
        n_valid: Rows with finite x and y found now (before sampling).
        optimum: Closed-form ``(w, b)`` on all valid rows, or None if undefined.
        note: Why there are no points or no optimum, or what differs from the run; "" if nothing.
    """

    row: dict
    x: np.ndarray
    y: np.ndarray
    n_valid: int
    optimum: tuple[float, float] | None
    note: str = ""


def closed_form(x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    """Least-squares ``(w, b)`` of ``y ≈ w·x + b`` in float64, or None when undefined.

    Centered and scaled by the largest deviation, so data far from 0 or near the top of
    the float64 range still gives the right answer.
    """
    if x.size < 2:
        return None
    with np.errstate(all="ignore"):
        x_mid, y_mid = _mean(x), _mean(y)
        dx, dy = x - x_mid, y - y_mid
        sx, sy = np.max(np.abs(dx)), np.max(np.abs(dy))
        if not np.isfinite(sx) or sx == 0 or not np.isfinite(sy):
            return None
        if sy == 0:
            return 0.0, float(y_mid)
        u, v = dx / sx, dy / sy
        w = float(sy / sx * (u @ v) / (u @ u))
        b = float(y_mid - w * x_mid)
    return (w, b) if np.isfinite(w) and np.isfinite(b) else None


def _mean(values: np.ndarray) -> float:
    scale = np.max(np.abs(values)) or 1.0
    return float(np.mean(values / scale) * scale)


def _sample(x: np.ndarray, y: np.ndarray, max_points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if x.size <= max_points:
        return x, y
    keep = np.sort(np.random.default_rng(seed).choice(x.size, size=max_points, replace=False))
    return x[keep], y[keep]


def _panel(row: dict, x: np.ndarray, y: np.ndarray, max_points: int, seed: int, note: str = "") -> Panel:
    valid = np.isfinite(x) & np.isfinite(y)
    x, y = x[valid], y[valid]
    optimum = closed_form(x, y)
    notes = [note] if note else []
    if x.size != row["n_rows"] and row["status"] != "failed":
        notes.append(f"the source now has {x.size:,} valid rows; the run used {row['n_rows']:,}")
    if optimum is None and x.size:
        notes.append("no closed-form line (fewer than 2 rows or constant x)")
    return Panel(row, *_sample(x, y, max_points, seed), int(x.size), optimum, "; ".join(notes))


def _unreadable(row: dict, message: str) -> Panel:
    empty = np.empty(0)
    return Panel(row, empty, empty, 0, None, message)


def _part_files(directory: str) -> list[str]:
    """The Parquet files directly in ``directory`` (not ``_``/``.`` names), as the job lists them."""
    from apache_beam.io.filesystems import FileSystems

    from pipeline.discover.layout import InputLayout

    layout = InputLayout(root=directory.rstrip("/"), pattern=directory.rstrip("/") + "/*")
    matched = FileSystems.match([layout.pattern])[0].metadata_list
    return sorted(m.path for m in matched if layout.accepts(m.path) and "/" not in layout.relative(m.path))


def _read_paths(paths: list[str], x_column: str, y_column: str) -> tuple[np.ndarray, np.ndarray]:
    from pipeline.read.parquet import read_xy

    pairs = [read_xy(path, x_column, y_column) for path in paths]
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


def _read_long_table(manifest: dict, keys: set[str]) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """Read every file of a long table once; return the rows of ``keys`` and the unreadable files."""
    from pipeline.config.errors import one_line
    from pipeline.discover.layout import input_layout, list_dataset_files
    from pipeline.read.parquet import read_keyed

    options = manifest["options"]
    key_column = options["group_by"].split(":", 1)[1]
    found: dict[str, list] = {key: [] for key in keys}
    bad = []
    for path in list_dataset_files(input_layout(manifest["input"], options.get("output"))):
        try:
            chunks, _ = read_keyed(path, key_column, options["x_column"], options["y_column"])
        except Exception as error:  # noqa: BLE001 (a bad file only costs its rows)
            bad.append(f"{path}: {one_line(error, 120)}")
            continue
        for chunk in chunks:
            if chunk.key in found:
                found[chunk.key].append(chunk)
    data = {
        key: (np.concatenate([c.x for c in chunks]), np.concatenate([c.y for c in chunks]))
        for key, chunks in found.items()
        if chunks
    }
    return data, bad


def load_panels(rows: list[dict], manifest: dict | None, max_points: int = 2000, seed: int = 0) -> list[Panel]:
    """Re-read the source data of ``rows`` and build their panels, in the same order.

    Args:
        rows: Output rows of the datasets to show.
        manifest: The partition's manifest (it records the layout and columns); without
            it every panel says the source cannot be located.
        max_points: Most points kept per panel (a seeded random sample).
        seed: Seed of the sampling.

    Returns:
        One panel per row; unreadable sources give panels with a note and no points.
    """
    from pipeline.config.errors import one_line

    options = (manifest or {}).get("options") or {}
    if not rows:
        return []
    if not {"group_by", "x_column", "y_column"} <= options.keys():
        return [_unreadable(row, "no _manifest.json options: cannot tell how to read the source") for row in rows]
    x_column, y_column = options["x_column"], options["y_column"]
    if options["group_by"].startswith("column:"):
        try:
            data, bad = _read_long_table(manifest, {row["dataset"] for row in rows})
        except Exception as error:  # noqa: BLE001
            return [_unreadable(row, f"cannot list the input: {one_line(error, 200)}") for row in rows]
        note = f"{len(bad)} unreadable file(s) of the input skipped, e.g. {bad[0]}" if bad else ""
        return [
            _panel(row, *data[row["dataset"]], max_points, seed, note)
            if row["dataset"] in data
            else _unreadable(row, f"no rows with this key in {manifest['input']} now")
            for row in rows
        ]
    panels = []
    for row in rows:
        try:
            paths = _part_files(row["source"]) if options["group_by"] == "directory" else [row["source"]]
            if not paths:
                raise FileNotFoundError(f"no Parquet files in {row['source']}")
            panels.append(_panel(row, *_read_paths(paths, x_column, y_column), max_points, seed))
        except Exception as error:  # noqa: BLE001 (a panel shows the reason instead of crashing the report)
            panels.append(_unreadable(row, f"cannot read {row['source']}: {one_line(error, 200)}"))
    return panels
