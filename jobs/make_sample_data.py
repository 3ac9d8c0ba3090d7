"""Deterministic sample data for tapefit: three input layouts, robust and weighted fits, and their known answers.

Usage: ``python -m jobs.make_sample_data [--out sample_data]``. A fixed seed makes the
output byte-for-byte reproducible (for given pyarrow and numpy versions). Inputs are
read from ``OUT/reference/`` (copies of NIST StRD ``Norris.dat`` and the Datasaurus
Dozen TSV with its licence); everything else under ``OUT`` is rewritten:

``files/`` (``--group_by file``): one dataset per Parquet file, id = path below
    ``files/`` without ``.parquet`` (``sensors/s01``, ``stores/café du monde``). About
    50 good lines y = w·x + b + Gaussian noise of varied size (50 to 5,000 rows), x
    scale (1e-3 to 1e6, a few at ±1e6 ± 10) and type (float64, float32, int32/int64 x);
    one with null, NaN and inf rows; NIST Norris as ``reference/norris``; ``broken/``
    files that must fail. ``README.txt`` is not Parquet, so it is not input.
``parts/`` (``--group_by directory``): datasets ``store=berlin|paris|tokyo``, each
    split into ``part-0000N.parquet`` files beside an empty ``_SUCCESS`` marker.
``long/`` (``--group_by column:dataset``): one table in three files with columns
    ``dataset, x, y``: the 13 Datasaurus Dozen datasets and 5 synthetic keys, each
    spread over several files, plus 7 rows with a null key (in no dataset).
``outliers/`` (``--group_by file``, for ``--loss huber``): ``spikes``, a line with 3% of
    its y shifted up by 50–100 σ where x > 60 (sensor spikes): least squares is dragged
    away from the generating line, Huber's fit is not.
``weighted/`` (``--group_by file``, for ``--weight_column weight``): ``heteroscedastic``,
    noise whose sd grows with x and a ``weight`` column of 1/variance, 4 of them null.
``truth.csv``: per dataset id of every layout (``files``, ``parts``, ``long``,
    ``outliers``, ``weighted``), the generating line (``true_w``, ``true_b``,
    ``noise_sd``; empty when unknown or varying), the closed-form least squares of the
    stored valid rows (``lstsq_w``, ``lstsq_b``, ``repr``-exact; empty for datasets that
    must fail), weighted by ``weight_column`` when it names one, ``expected_status`` and
    a ``note``.
"""

from __future__ import annotations

import argparse
import csv
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = [
    "LAYOUTS",
    "NORRIS_B",
    "NORRIS_W",
    "SEED",
    "TRUTH_COLUMNS",
    "WEIGHT_COLUMN",
    "Line",
    "closed_form",
    "generate",
    "main",
]

SEED = 20260101
NORRIS_W, NORRIS_B = 1.00211681802045, -0.262323073774029
TRUTH_COLUMNS = (
    "layout", "dataset", "true_w", "true_b", "noise_sd", "lstsq_w", "lstsq_b", "weight_column", "expected_status",
    "note",
)  # fmt: skip
REFERENCE_FILES = ("Norris.dat", "DatasaurusDozen-Long.tsv", "DatasaurusDozen.LICENSE.md")
LAYOUTS = ("files", "parts", "long", "outliers", "weighted")  # the generated folders, one per truth.csv layout
WEIGHT_COLUMN = "weight"  # the weight column of weighted/
_README = """\
Sample input for `python -m jobs.fit_lines --input sample_data/files ...`: every *.parquet
below is one dataset, id = its path here without ".parquet"; broken/ must fail. The job
ignores this non-Parquet file. Made by `python -m jobs.make_sample_data`; answers: ../truth.csv.
"""


@dataclass(frozen=True)
class Line:
    """A generating line: y = w·x + b + N(0, noise_sd²), x uniform on offset ± scale.

    Attributes:
        w: True slope.
        b: True intercept.
        noise_sd: Standard deviation of the Gaussian noise on y.
        scale: Half-width of the x range.
        offset: Centre of the x range.
    """

    w: float
    b: float
    noise_sd: float
    scale: float
    offset: float = 0.0

    def sample(self, rng: np.random.Generator, n: int, integer_x: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` rows (x as whole numbers when ``integer_x``), both float64."""
        if integer_x:
            half = int(self.scale)
            x = self.offset + rng.integers(-half, half + 1, n).astype(np.float64)
        else:
            x = self.offset + self.scale * rng.uniform(-1.0, 1.0, n)
        return x, self.w * x + self.b + rng.normal(0.0, self.noise_sd, n)


def _sig(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")


def _random_line(rng: np.random.Generator, exponent: float) -> Line:
    """A readable random line whose x spans about 10**exponent; noise keeps |r| > 0.85."""
    scale = _sig(10.0**exponent, 2)
    w = _sig(rng.choice([-1.0, 1.0]) * 10.0 ** rng.uniform(-2.0, 2.0))
    b = _sig(rng.normal(0.0, 1.0) * abs(w) * scale * 10.0 ** rng.uniform(-1.0, 1.0))
    return Line(w, b, _sig(abs(w) * scale * 10.0 ** rng.uniform(-3.0, -0.5), 3), scale)


def closed_form(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float]:
    """Least-squares (w, b) of the rows where x and y are finite, centred in float64.

    With ``weights`` c, weighted least squares (minimizing Σcᵢ(yᵢ − w·xᵢ − b)²) over
    the rows whose weight is finite and ≥ 0, as the job keeps them. Every sum is
    ``math.fsum`` (correctly rounded), not BLAS, so truth.csv comes out the same on
    every CPU.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if weights is not None:
        c = np.asarray(weights, np.float64)
        keep &= np.isfinite(c) & (c >= 0)
        return _weighted_form(x[keep], y[keep], c[keep])
    x, y = x[keep], y[keep]
    mean_x, mean_y = math.fsum(x) / x.size, math.fsum(y) / y.size
    mean_x += math.fsum(x - mean_x) / x.size
    mean_y += math.fsum(y - mean_y) / y.size
    dx = x - mean_x
    w = math.fsum(dx * (y - mean_y)) / math.fsum(dx * dx)
    return w, mean_y - w * mean_x


def _weighted_form(x: np.ndarray, y: np.ndarray, c: np.ndarray) -> tuple[float, float]:
    """Weighted least squares of valid rows, with weighted means corrected once (``fsum`` sums)."""
    total = math.fsum(c)
    mean_x, mean_y = math.fsum(c * x) / total, math.fsum(c * y) / total
    mean_x += math.fsum(c * (x - mean_x)) / total
    mean_y += math.fsum(c * (y - mean_y)) / total
    dx = x - mean_x
    w = math.fsum(c * dx * (y - mean_y)) / math.fsum(c * dx * dx)
    return w, mean_y - w * mean_x


def _xy_table(x: np.ndarray, y: np.ndarray, x_type: str = "float64", y_type: str = "float64") -> pa.Table:
    return pa.table({"x": pa.array(x.astype(x_type)), "y": pa.array(y.astype(y_type))})


def _stored_xy(tables: list[pa.Table]) -> tuple[np.ndarray, np.ndarray]:
    """x, y as the job will read them: float64, nulls as NaN, parts concatenated."""
    x, y = ([pc.cast(t.column(name), pa.float64()).to_numpy() for t in tables] for name in "xy")
    return np.concatenate(x), np.concatenate(y)


def _truth(
    layout: str, dataset: str, xy: tuple | None, line: Line | None, note: str, weight_column: str = ""
) -> list[str]:
    """One truth.csv row; ``xy`` is None for a dataset that must fail, else x, y (and the weights)."""
    fit = closed_form(*xy) if xy is not None else None
    values = (line.w, line.b, line.noise_sd or None) if line else (None, None, None)
    numbers = [*values, *(fit or (None, None))]
    cells = ["" if value is None else repr(float(value)) for value in numbers]
    return [layout, dataset, *cells, weight_column, "ok" if fit else "failed", note]


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy")


def _synthetic(
    rng: np.random.Generator, root: Path, dataset: str, line: Line, n: int, x_type: str, note: str
) -> list[str]:
    """Sample ``line``, write ``root/DATASET.parquet`` (y float32 when x is) and return its truth row."""
    x, y = line.sample(rng, n, x_type.startswith("int"))
    table = _xy_table(x, y, x_type, "float32" if x_type == "float32" else "float64")
    _write(table, root / f"{dataset}.parquet")
    return _truth("files", dataset, _stored_xy([table]), line, f"{n} rows; x {x_type}; {note}")


def _good_files(rng: np.random.Generator, root: Path) -> list[list[str]]:
    """The ``files/`` datasets that must fit: random lines, special cases, dirty rows, Norris."""
    plan = [(f"sensors/s{i:02d}", "float32" if i % 5 == 2 else "float64") for i in range(1, 19)]
    plan += [(f"stores/store_{i:02d}", "int32" if i % 2 else "int64") for i in range(1, 15)]
    plan += [(f"experiments/e{i:02d}", "float64") for i in range(1, 13)]
    exponents = rng.permutation(np.linspace(-3.0, 6.0, len(plan)))
    sizes = np.rint(50.0 * 100.0 ** rng.uniform(0.0, 1.0, len(plan))).astype(int)
    sizes[[0, -1]] = 50, 5000
    rows = []
    for (dataset, x_type), exponent, n in zip(plan, exponents, sizes, strict=True):
        integer = x_type.startswith("int")
        line = _random_line(rng, max(exponent, 1.5) if integer else exponent)
        if integer:  # counts: whole numbers from 0 to 2·scale
            line = Line(line.w, line.b, line.noise_sd, float(int(line.scale)), float(int(line.scale)))
        rows.append(_synthetic(rng, root, dataset, line, int(n), x_type, f"x span ~ {2 * line.scale:g}"))
    specials = [
        ("experiments/far_1e6", Line(2.5, -2.5e6, 0.5, 10.0, 1e6), 1500, "float64", "x = 1e6 ± 10"),
        ("experiments/far_minus_1e6", Line(-0.75, 3.0, 0.05, 10.0, -1e6), 400, "float64", "x = -1e6 ± 10"),
        ("experiments/far_int_1e6", Line(1.2, -1.2e6, 2.0, 10.0, 1e6), 800, "int64", "x = 1e6 ± 10"),
        ("stores/café du monde", Line(3.5, 12.0, 4.0, 60.0, 60.0), 365, "int32", "spaces and non-ASCII in name"),
    ]
    rows += [_synthetic(rng, root, *spec) for spec in specials]
    return [*rows, _dirty(rng, root), _norris(root)]


def _dirty(rng: np.random.Generator, root: Path) -> list[str]:
    """``sensors/dirty_readings``: a good dataset with 16 null, NaN or inf rows to drop."""
    line = Line(-1.5, 40.0, 2.0, 25.0, 25.0)
    x, y = line.sample(rng, 800)
    bad = rng.choice(x.size, 16, replace=False)
    x[bad[8:11]], y[bad[11]], y[bad[12:14]], x[bad[14:]] = np.nan, np.nan, np.inf, -np.inf
    x_null, y_null = np.isin(np.arange(x.size), bad[:4]), np.isin(np.arange(x.size), bad[4:8])
    table = pa.table({"x": pa.array(x, mask=x_null), "y": pa.array(y, mask=y_null)})
    _write(table, root / "sensors/dirty_readings.parquet")
    note = "800 rows; 16 dropped: 4 null x + 4 null y + 4 NaN + 4 inf"
    return _truth("files", "sensors/dirty_readings", _stored_xy([table]), line, note)


def _norris(root: Path) -> list[str]:
    """NIST StRD Norris (data on lines 61–96 of Norris.dat, columns ``y x``)."""
    lines = (root.parent / "reference" / "Norris.dat").read_text(encoding="ascii").splitlines()
    y, x = np.array([[float(v) for v in text.split()] for text in lines[60:96]]).T
    w, b = closed_form(x, y)
    if x.size != 36 or abs(w - NORRIS_W) > 1e-12 or abs(b - NORRIS_B) > 1e-9:
        raise ValueError(f"Norris.dat parsed wrongly: {x.size} rows, w={w!r}, b={b!r}")
    _write(_xy_table(x, y), root / "reference/norris.parquet")
    note = f"NIST StRD Norris: certified w={NORRIS_W!r} b={NORRIS_B!r}"
    return _truth("files", "reference/norris", (x, y), None, note)


def _broken_files(rng: np.random.Generator, root: Path) -> list[list[str]]:
    """``files/broken/``: every one must come out ``failed`` with a clear reason."""
    folder = root / "broken"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zero_bytes.parquet").write_bytes(b"")
    (folder / "corrupt.parquet").write_bytes(rng.bytes(2048))
    x = np.round(rng.uniform(0.0, 10.0, 100), 3)
    tables = {
        "missing_y": (pa.table({"x": pa.array(x)}), "no y column"),
        "text_x": (pa.table({"x": pa.array([f"{v:.3f}" for v in x]), "y": pa.array(2 * x)}), "x is a string column"),
        "one_row": (_xy_table(np.array([1.0]), np.array([2.0])), "a single valid row"),
        "constant_x": (_xy_table(np.full(100, 3.0), x), "x = 3.0 on all 100 rows"),
        "empty": (_xy_table(np.array([]), np.array([])), "valid Parquet with 0 rows"),
        "all_null_y": (pa.table({"x": pa.array(x), "y": pa.nulls(100, pa.float64())}), "y null on all 100 rows"),
    }
    for name, (table, _) in tables.items():
        _write(table, folder / f"{name}.parquet")
    notes = {"zero_bytes": "zero-byte file", "corrupt": "2048 random bytes (not Parquet)"}
    notes.update({name: note for name, (_, note) in tables.items()})
    return [_truth("files", f"broken/{name}", None, None, note) for name, note in notes.items()]


def _parts(rng: np.random.Generator, root: Path) -> list[list[str]]:
    """``parts/store=*/``: one dataset per directory, rows split over part files."""
    plan = [  # dataset, line, rows, parts, x type, the part whose y is float32 (schema drift)
        ("store=berlin", Line(0.8, 150.0, 12.0, 500.0, 500.0), 1200, 2, "int32", None),
        ("store=paris", Line(-0.035, 9.5, 0.2, 40.0), 900, 3, "float64", 1),
        ("store=tokyo", Line(42.0, -1.0e4, 300.0, 1000.0, 1000.0), 2000, 4, "int64", None),
    ]
    rows = []
    for dataset, line, n, count, x_type, part32 in plan:
        x, y = line.sample(rng, n, x_type.startswith("int"))
        splits = zip(np.array_split(x, count), np.array_split(y, count), strict=True)
        tables = [
            _xy_table(xs, ys, x_type, "float32" if i == part32 else "float64") for i, (xs, ys) in enumerate(splits)
        ]
        for i, table in enumerate(tables):
            _write(table, root / dataset / f"part-{i:05d}.parquet")
        (root / dataset / "_SUCCESS").write_bytes(b"")
        note = f"{n} rows in {count} parts; x {x_type}" + (
            f"; part-{part32:05d} has float32 y" if part32 is not None else ""
        )
        rows.append(_truth("parts", dataset, _stored_xy(tables), line, note))
    return rows


def _long(rng: np.random.Generator, root: Path) -> list[list[str]]:
    """``long/part-{0,1,2}.parquet``: Datasaurus Dozen + synthetic keys + null keys."""
    path = root.parent / "reference" / "DatasaurusDozen-Long.tsv"
    table = np.genfromtxt(path, delimiter="\t", names=True, dtype=None, encoding="utf-8")
    names = table["dataset"].astype(str)
    data = {str(key): (table["x"][names == key], table["y"][names == key]) for key in dict.fromkeys(names)}
    notes = {key: "Datasaurus Dozen (Matejka & Fitzmaurice 2017; MIT licence)" for key in data}
    synthetic = {
        "calibration": (Line(1.02, -0.3, 0.05, 5.0, 5.0), 400),
        "drift": (Line(0.004, -3990.0, 0.01, 10.0, 1e6), 300),
        "Zürich": (Line(-2.2, 180.0, 3.0, 30.0, 30.0), 250),
        "steep": (Line(1.0e4, 7.0, 50.0, 0.01), 200),
        "tiny": (Line(0.5, 1.0, 0.1, 2.0), 3),
    }
    lines = {}
    for key, (line, n) in synthetic.items():
        data[key], lines[key], notes[key] = line.sample(rng, n), line, f"synthetic; {n} rows"
    keys = [key for key, (xs, _) in data.items() for _row in range(xs.size)] + [None] * 7
    x = np.concatenate([xs for xs, _ in data.values()] + [rng.uniform(0.0, 100.0, 7)])
    y = np.concatenate([ys for _, ys in data.values()] + [rng.uniform(0.0, 100.0, 7)])
    slot = np.concatenate([np.arange(xs.size) % 3 for xs, _ in data.values()] + [np.arange(7) % 3])
    root.mkdir(parents=True, exist_ok=True)
    for part in range(3):
        chosen = rng.permutation(np.flatnonzero(slot == part))
        key_array = pa.array([keys[i] for i in chosen], pa.string())
        _write(pa.table({"dataset": key_array, "x": x[chosen], "y": y[chosen]}), root / f"part-{part}.parquet")
    return [_truth("long", key, data[key], lines.get(key), notes[key]) for key in sorted(data)]


def _outliers(rng: np.random.Generator, root: Path) -> list[list[str]]:
    """``outliers/spikes``: a clean line whose sensor spikes (3% of y, +50–100 σ while x > 60) drag least squares."""
    line = Line(0.8, 5.0, 1.0, 50.0, 50.0)
    x, y = line.sample(rng, 1000)
    spikes = np.sort(rng.choice(np.flatnonzero(x > 60.0), 30, replace=False))
    y[spikes] += line.noise_sd * rng.uniform(50.0, 100.0, spikes.size)
    _write(_xy_table(x, y), root / "spikes.parquet")
    note = "1000 rows; 30 (3%) y shifted up by 50–100 σ where x > 60 (sensor spikes): lstsq_* is dragged, huber is not"
    return [_truth("outliers", "spikes", (x, y), line, note)]


def _weighted(rng: np.random.Generator, root: Path) -> list[list[str]]:
    """``weighted/heteroscedastic``: noise sd 0.2 + 0.1·x, weights 1/variance (4 null: dropped)."""
    line = Line(1.5, -4.0, 0.0, 25.0, 25.0)
    x = line.offset + line.scale * rng.uniform(-1.0, 1.0, 600)
    sd = 0.2 + 0.1 * x
    y = line.w * x + line.b + sd * rng.normal(0.0, 1.0, x.size)
    weight = 1.0 / (sd * sd)
    unknown = np.isin(np.arange(x.size), rng.choice(x.size, 4, replace=False))
    table = pa.table({"x": pa.array(x), "y": pa.array(y), WEIGHT_COLUMN: pa.array(weight, mask=unknown)})
    _write(table, root / "heteroscedastic.parquet")
    ols_w, ols_b = closed_form(x[~unknown], y[~unknown])
    note = (
        f"600 rows; noise sd 0.2 + 0.1·x (0.2 to 5.2); {WEIGHT_COLUMN} = 1/sd², null on 4 rows (dropped); "
        f"lstsq_* weighted; unweighted least squares w={ols_w!r} b={ols_b!r}"
    )
    stored = np.where(unknown, np.nan, weight)
    return [_truth("weighted", "heteroscedastic", (x, y, stored), line, note, WEIGHT_COLUMN)]


def generate(out: Path) -> list[list[str]]:
    """Rewrite the layouts' folders (:data:`LAYOUTS`) and ``truth.csv`` under ``out``.

    Args:
        out: The sample data folder; its ``reference/`` subfolder must hold the
            reference inputs and is left untouched.

    Returns:
        The truth rows written (without the header).

    Raises:
        FileNotFoundError: if a reference input is missing.
    """
    missing = [name for name in REFERENCE_FILES if not (out / "reference" / name).is_file()]
    if missing:
        raise FileNotFoundError(f"missing {', '.join(missing)} in {out / 'reference'} (copy them from reference-data)")
    for name in LAYOUTS:
        shutil.rmtree(out / name, ignore_errors=True)
    (out / "truth.csv").unlink(missing_ok=True)
    rng = np.random.default_rng(SEED)
    files = out / "files"
    rows = _good_files(rng, files) + _broken_files(rng, files)
    (files / "README.txt").write_text(_README, encoding="utf-8")
    rows = sorted(rows, key=lambda row: row[1]) + _parts(rng, out / "parts") + _long(rng, out / "long")
    robust = np.random.default_rng([SEED, 1])  # a stream of its own: the older layouts stay as they were
    rows += _outliers(robust, out / "outliers") + _weighted(robust, out / "weighted")
    with (out / "truth.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(TRUTH_COLUMNS)
        writer.writerows(rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Generate the sample data; return the process exit status (2 if inputs are missing)."""
    parser = argparse.ArgumentParser(prog="python -m jobs.make_sample_data", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="sample_data", help="Sample data folder (default: sample_data).")
    out = Path(parser.parse_args(argv).out)
    try:
        rows = generate(out)
    except FileNotFoundError as error:
        print(f"make_sample_data: error: {error}", file=sys.stderr)
        return 2
    paths = [out / "truth.csv", *(path for name in LAYOUTS for path in (out / name).rglob("*"))]
    size = sum(path.stat().st_size for path in paths if path.is_file())
    counts = {layout: sum(row[0] == layout for row in rows) for layout in LAYOUTS}
    print(f"wrote {out}: " + ", ".join(f"{n} {layout} datasets" for layout, n in counts.items()) + f"; {size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
