"""Reading the source data of a few datasets again, for the report's scatter panels.

Each panel gets its dataset's valid points (finite x and y; with a weight column, a
finite weight ≥ 0, as the job keeps them), sampled to at most ``max_points`` with a
fixed seed, and a reference line computed in float64 on all of them: the fit's own
closed form (least squares, weighted when the run was, through the origin when it had
no intercept), the optimum gradient descent should have reached; for the Huber loss,
which has none, the least-squares line of the same rows, for comparison. Huber panels
also mark the outliers, the rows with ``|y − w·x − b| > ε·σ``. Files are read with
:mod:`pipeline.read.parquet` (Beam's ``FileSystems``), in the layout and columns the
manifest records; a long table (``column:NAME``) is read once for all panels. A source
that cannot be read gives a panel with a note instead of points, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.report.data import FitModel

__all__ = ["Panel", "closed_form", "load_panels"]


@dataclass(frozen=True)
class Panel:
    """One dataset's data as re-read now, ready to plot.

    Attributes:
        row: The dataset's row of the output table.
        x: Sampled valid x values (empty when the data could not be read).
        y: The matching y values.
        n_valid: Valid rows found now (before sampling).
        optimum: The reference line ``(w, b)`` on all valid rows (see :attr:`FitModel.reference`),
            or None if undefined.
        note: Why there are no points or no optimum, or what differs from the run; "" if nothing.
        model: The fit the row comes from (loss, weights, intercept).
        outliers: For each sampled point, whether ``|y − w·x − b| > ε·σ`` (Huber fits; else all False).
        n_outliers: Such rows among all valid rows with a positive weight now (Huber fits), else None.
    """

    row: dict
    x: np.ndarray
    y: np.ndarray
    n_valid: int
    optimum: tuple[float, float] | None
    note: str = ""
    model: FitModel = field(default_factory=FitModel)
    outliers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    n_outliers: int | None = None


def closed_form(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, intercept: bool = True
) -> tuple[float, float] | None:
    """Least-squares ``(w, b)`` of ``y ≈ w·x + b`` (or ``y ≈ w·x``) in float64, or None when undefined.

    With ``weights`` c, weighted least squares: rows with c ≤ 0 carry no information and
    are left out. Without an intercept, ``w = Σcxy/Σcx²`` and b is 0. Centered (with an
    intercept) and scaled by the largest magnitude, so data far from 0 or near the top of
    the float64 range still gives the right answer.

    Args:
        x: Finite x values.
        y: Finite y values.
        weights: Finite row weights ≥ 0, or None for 1 on every row.
        intercept: Fit b (True) or hold it at 0.

    Returns:
        ``(w, b)``, or None with fewer than 2 positive-weight rows, with constant x (with
        an intercept) or all-zero x (without), or when the result is not finite.
    """
    c = None
    if weights is not None:
        keep = weights > 0
        x, y, c = x[keep], y[keep], weights[keep]
        c = c / np.max(c) if c.size else c  # weights are scale-free: keep Σc·u·v far from overflow
    if x.size < 2:
        return None
    with np.errstate(all="ignore"):
        x_mid, y_mid = (_mean(x, c), _mean(y, c)) if intercept else (0.0, 0.0)
        dx, dy = x - x_mid, y - y_mid
        sx, sy = np.max(np.abs(dx)), np.max(np.abs(dy))
        if not np.isfinite(sx) or sx == 0 or not np.isfinite(sy):
            return None
        if sy == 0:
            return 0.0, float(y_mid)
        u, v = dx / sx, dy / sy
        cu = u if c is None else c * u
        w = float(sy / sx * (cu @ v) / (cu @ u))
        b = float(y_mid - w * x_mid) if intercept else 0.0
    return (w, b) if np.isfinite(w) and np.isfinite(b) else None


def _mean(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The (weighted) mean of scaled values, with one correction pass."""
    scale = np.max(np.abs(values)) or 1.0
    scaled = values / scale
    if weights is None:
        mean = np.mean(scaled)
        return float((mean + np.mean(scaled - mean)) * scale)
    total = np.sum(weights)
    mean = (weights @ scaled) / total
    return float((mean + (weights @ (scaled - mean)) / total) * scale)


def _sample(size: int, max_points: int, seed: int) -> np.ndarray | slice:
    """The rows drawn: all of them, or a seeded random ``max_points`` in their order."""
    if size <= max_points:
        return slice(None)
    return np.sort(np.random.default_rng(seed).choice(size, size=max_points, replace=False))


def _outliers(row: dict, model: FitModel, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """Whether each row lies beyond ε·σ of the Huber fit; None for other fits or without a fit."""
    w, b, sigma = row.get("w"), row.get("b"), row.get("scale")
    if model.loss != "huber" or w is None or b is None or sigma is None:
        return None
    with np.errstate(all="ignore"):
        return np.abs(y - (w * x + b)) > model.epsilon * sigma


def _panel(
    row: dict,
    columns: tuple[np.ndarray, ...],
    model: FitModel,
    max_points: int,
    seed: int,
    note: str = "",
) -> Panel:
    """A panel from the re-read columns: x, y and, for a weighted fit, the weights."""
    x, y, *rest = columns
    c = rest[0] if rest else None
    valid = np.isfinite(x) & np.isfinite(y)
    if c is not None:
        valid &= np.isfinite(c) & (c >= 0)  # the rows the job keeps (zero weights included)
        c = c[valid]
    x, y = x[valid], y[valid]
    optimum = closed_form(x, y, c, model.intercept)
    notes = [note] if note else []
    if x.size != row["n_rows"] and row["status"] != "failed":
        notes.append(f"the source now has {x.size:,} valid rows; the run used {row['n_rows']:,}")
    if optimum is None and x.size:
        notes.append(f"no {model.reference.split(',')[0]} line (too few rows or constant x)")
    beyond = _outliers(row, model, x, y)
    if beyond is not None and c is not None:
        beyond &= c > 0  # a zero-weight row is not fitted, so not an outlier either
    keep = _sample(x.size, max_points, seed)
    return Panel(
        row,
        x[keep],
        y[keep],
        int(x.size),
        optimum,
        "; ".join(notes),
        model,
        beyond[keep] if beyond is not None else np.zeros(x[keep].size, dtype=bool),
        int(beyond.sum()) if beyond is not None else None,
    )


def _unreadable(row: dict, message: str, model: FitModel | None = None) -> Panel:
    empty = np.empty(0)
    return Panel(row, empty, empty, 0, None, message, model or FitModel())


def _part_files(directory: str) -> list[str]:
    """The Parquet files directly in ``directory`` (not ``_``/``.`` names), as the job lists them."""
    from apache_beam.io.filesystems import FileSystems

    from pipeline.discover.layout import InputLayout

    layout = InputLayout(root=directory.rstrip("/"), pattern=directory.rstrip("/") + "/*")
    matched = FileSystems.match([layout.pattern])[0].metadata_list
    return sorted(m.path for m in matched if layout.accepts(m.path) and "/" not in layout.relative(m.path))


def _read_paths(paths: list[str], columns: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """The named numeric columns of every file, as float64 (nulls as NaN), concatenated in path order."""
    from pipeline.read.parquet import read_table, to_float64

    names = list(dict.fromkeys(columns))
    tables = [read_table(path, names) for path in paths]
    return tuple(np.concatenate([to_float64(t.column(name), name) for t in tables]) for name in columns)


def _read_long_table(
    manifest: dict, keys: set[str], weights: str | None
) -> tuple[dict[str, tuple[np.ndarray, ...]], list[str]]:
    """Read every file of a long table once; return the columns of ``keys`` and the unreadable files."""
    from pipeline.config.errors import one_line
    from pipeline.discover.layout import input_layout, list_dataset_files
    from pipeline.read.parquet import read_keyed

    options = manifest["options"]
    key_column = options["group_by"].split(":", 1)[1]
    found: dict[str, list] = {key: [] for key in keys}
    bad = []
    for path in list_dataset_files(input_layout(manifest["input"], options.get("output"))):
        try:
            chunks, _ = read_keyed(path, key_column, options["x_column"], options["y_column"], weights)
        except Exception as error:  # noqa: BLE001 (a bad file only costs its rows)
            bad.append(f"{path}: {one_line(error, 120)}")
            continue
        for chunk in chunks:
            if chunk.key in found:
                found[chunk.key].append(chunk)
    data = {
        key: (np.concatenate([c.x for c in chunks]), np.concatenate([c.y for c in chunks]))
        + ((np.concatenate([c.w for c in chunks]),) if weights else ())
        for key, chunks in found.items()
        if chunks
    }
    return data, bad


def load_panels(rows: list[dict], manifest: dict | None, max_points: int = 2000, seed: int = 0) -> list[Panel]:
    """Re-read the source data of ``rows`` and build their panels, in the same order.

    Args:
        rows: Output rows of the datasets to show.
        manifest: The partition's manifest (it records the layout, the columns and the
            fit); without it every panel says the source cannot be located.
        max_points: Most points kept per panel (a seeded random sample).
        seed: Seed of the sampling.

    Returns:
        One panel per row; unreadable sources give panels with a note and no points.
    """
    from pipeline.config.errors import one_line

    options = (manifest or {}).get("options") or {}
    model = FitModel.from_manifest(manifest)
    if not rows:
        return []
    if not {"group_by", "x_column", "y_column"} <= options.keys():
        return [_unreadable(row, "no _manifest.json options: cannot tell how to read the source") for row in rows]
    columns = (options["x_column"], options["y_column"]) + ((model.weights,) if model.weights else ())
    if options["group_by"].startswith("column:"):
        try:
            data, bad = _read_long_table(manifest, {row["dataset"] for row in rows}, model.weights)
        except Exception as error:  # noqa: BLE001
            return [_unreadable(row, f"cannot list the input: {one_line(error, 200)}", model) for row in rows]
        note = f"{len(bad)} unreadable file(s) of the input skipped, e.g. {bad[0]}" if bad else ""
        return [
            _panel(row, data[row["dataset"]], model, max_points, seed, note)
            if row["dataset"] in data
            else _unreadable(row, f"no rows with this key in {manifest['input']} now", model)
            for row in rows
        ]
    panels = []
    for row in rows:
        try:
            paths = _part_files(row["source"]) if options["group_by"] == "directory" else [row["source"]]
            if not paths:
                raise FileNotFoundError(f"no Parquet files in {row['source']}")
            panels.append(_panel(row, _read_paths(paths, columns), model, max_points, seed))
        except Exception as error:  # noqa: BLE001 (a panel shows the reason instead of crashing the report)
            panels.append(_unreadable(row, f"cannot read {row['source']}: {one_line(error, 200)}", model))
    return panels
