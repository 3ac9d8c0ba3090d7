"""The benchmark's workloads: deterministic Parquet inputs, generated once into a cache folder.

Every row is ``y = w·x + b + noise`` in float64 columns ``x``, ``y`` with per-dataset w, b, x
range and noise drawn from a fixed seed, so two generations of the same workload are identical.
Each workload lives in ``CACHE/NAME-SHAPE-vN/``; a marker file ``CACHE/NAME-SHAPE-vN.done`` is
written last, so an interrupted generation is redone on the next run.
"""

from __future__ import annotations

import json
import shutil
import time
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = [
    "DEFAULT_WORKLOADS",
    "FULL",
    "GENERATOR_VERSION",
    "KEY_COLUMN",
    "QUICK",
    "SEED",
    "Workload",
    "dataset_id",
    "ensure",
    "generate",
    "parquet_files",
]

SEED = 20260101
GENERATOR_VERSION = 1
KEY_COLUMN = "dataset"
ROW_GROUP = 1_000_000
_CHUNK_ROWS = 4_000_000  # rows generated at once for the file layout, bounds memory


@dataclass(frozen=True)
class Workload:
    """One benchmark input.

    Attributes:
        name: Short name (``S``, ``M``, ``L``, ``K``).
        layout: ``file``, ``directory`` or ``column`` (tapefit's ``--group_by``).
        n_datasets: Number of datasets (lines to fit).
        rows: Rows per dataset.
        n_files: Parquet files written (one per dataset for the file layout).
        eager_sample: Datasets the textbook eager loop fits (0: not run on this workload).
        per_folder: Files per subfolder of the file layout (``g000/``, ``g001/``, ...).
    """

    name: str
    layout: str
    n_datasets: int
    rows: int
    n_files: int
    eager_sample: int
    per_folder: int = 1000

    @property
    def key(self) -> str:
        """Cache folder name: name, shape and generator version."""
        folders = "" if self.per_folder == 1000 else f"-{self.per_folder}pf"
        return f"{self.name}-{self.n_datasets}x{self.rows}-{self.n_files}f{folders}-v{GENERATOR_VERSION}"

    @property
    def group_by(self) -> str:
        """The value of tapefit's ``--group_by`` for this layout."""
        return f"column:{KEY_COLUMN}" if self.layout == "column" else self.layout

    @property
    def total_rows(self) -> int:
        """Rows over all datasets."""
        return self.n_datasets * self.rows

    def ids(self) -> list[str]:
        """The dataset ids every contender must report, sorted."""
        if self.layout == "directory":
            return ["."]
        if self.layout == "column":
            return [_key(i) for i in range(self.n_datasets)]
        return [_file_stem(i, self.per_folder) for i in range(self.n_datasets)]


FULL = {
    "S": Workload("S", "file", 20_000, 100, 20_000, eager_sample=3),
    "M": Workload("M", "file", 1_000, 50_000, 1_000, eager_sample=1),
    "L": Workload("L", "directory", 1, 50_000_000, 100, eager_sample=0),
    "K": Workload("K", "column", 10_000, 2_000, 20, eager_sample=3),
    # at scale: 200,000 small files in folders of 10,000; a 200M-row long table in 20 files of
    # 10M rows (row groups of 1M), 100,000 keys
    "S10": Workload("S10", "file", 200_000, 100, 200_000, eager_sample=0, per_folder=10_000),
    "K10": Workload("K10", "column", 100_000, 2_000, 20, eager_sample=0),
    # start-up: one dataset, against the import floor (benchmarks.floor)
    "ONE": Workload("ONE", "file", 1, 100, 1, eager_sample=0),
}
# The workloads `make bench` runs by default (all of them).
DEFAULT_WORKLOADS = tuple(FULL)
QUICK = {  # a minute or so in all, most of it tapefit's start-up; the eager loop only on S
    "S": Workload("S", "file", 200, 100, 200, eager_sample=3),
    "M": Workload("M", "file", 10, 50_000, 10, eager_sample=0),
    "L": Workload("L", "directory", 1, 1_000_000, 10, eager_sample=0),
    "K": Workload("K", "column", 200, 2_000, 4, eager_sample=0),
    "S10": Workload("S10", "file", 2_000, 100, 2_000, eager_sample=0),
    "K10": Workload("K10", "column", 1_000, 200, 4, eager_sample=0),
    "ONE": Workload("ONE", "file", 1, 100, 1, eager_sample=0),
}


def _key(i: int) -> str:
    return f"k{i:05d}"


def _file_stem(i: int, per_folder: int = 1000) -> str:
    return f"g{i // per_folder:03d}/d{i:06d}"


def dataset_id(path: str, root: str, layout: str) -> str:
    """The id tapefit gives the dataset of ``path`` under ``root`` (file or directory layout).

    Args:
        path: A Parquet file below ``root``, as an absolute path.
        root: The input directory, as an absolute path without a trailing ``/``.
        layout: ``file`` or ``directory``.

    Returns:
        ``file``: the path relative to ``root`` without ``.parquet``; ``directory``: the file's
        directory relative to ``root``, ``.`` for the root itself.
    """
    rel = path[len(root) + 1 :] if path.startswith(root + "/") else path
    if layout == "directory":
        return rel.rpartition("/")[0] or "."
    return rel.removesuffix(".parquet")


def parquet_files(root: Path) -> list[Path]:
    """Every ``*.parquet`` below ``root``, sorted."""
    return sorted(root.rglob("*.parquet"))


def _params(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Per-dataset line, x range and noise; |w| ≥ 0.5 and |b| ≥ 1 keep relative diffs meaningful."""
    return {
        "w": rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 5.0, n),
        "b": rng.choice([-1.0, 1.0], n) * rng.uniform(1.0, 10.0, n),
        "loc": rng.uniform(-10.0, 10.0, n),
        "scale": rng.uniform(0.5, 5.0, n),
        "noise": rng.uniform(0.05, 1.0, n),
    }


def _rows(rng: np.random.Generator, p: dict[str, np.ndarray], which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y for rows belonging to datasets ``which`` (an index array of any shape)."""
    x = p["loc"][which] + p["scale"][which] * rng.uniform(-1.0, 1.0, which.shape)
    y = p["w"][which] * x + p["b"][which] + p["noise"][which] * rng.standard_normal(which.shape)
    return x, y


def _write(path: Path, **columns: pa.Array | np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, compression="snappy", row_group_size=ROW_GROUP)


def _split(total: int, parts: int) -> Iterator[tuple[int, int]]:
    bounds = np.linspace(0, total, parts + 1).round().astype(np.int64)
    yield from zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)


def generate(workload: Workload, out: Path) -> None:
    """Write ``workload``'s Parquet files under ``out`` (which must not hold other files).

    Args:
        workload: What to generate.
        out: Target directory, created if missing.
    """
    rng = np.random.default_rng((SEED, zlib.crc32(workload.name.encode())))
    p = _params(rng, workload.n_datasets)
    out.mkdir(parents=True, exist_ok=True)
    if workload.layout == "file":
        per_chunk = max(1, _CHUNK_ROWS // workload.rows)
        for start in range(0, workload.n_datasets, per_chunk):
            which = np.arange(start, min(start + per_chunk, workload.n_datasets))
            x, y = _rows(rng, p, np.repeat(which[:, None], workload.rows, axis=1))
            for j, i in enumerate(which.tolist()):
                _write(out / f"{_file_stem(i, workload.per_folder)}.parquet", x=x[j], y=y[j])
    elif workload.layout == "directory":
        for part, (lo, hi) in enumerate(_split(workload.total_rows, workload.n_files)):
            x, y = _rows(rng, p, np.zeros(hi - lo, dtype=np.int64))
            _write(out / f"part-{part:05d}.parquet", x=x, y=y)
    else:
        codes = rng.permutation(np.repeat(np.arange(workload.n_datasets), workload.rows))
        names = pa.array([_key(i) for i in range(workload.n_datasets)])
        for part, (lo, hi) in enumerate(_split(codes.size, workload.n_files)):
            x, y = _rows(rng, p, codes[lo:hi])
            _write(out / f"part-{part:05d}.parquet", **{KEY_COLUMN: pc.take(names, codes[lo:hi]), "x": x, "y": y})


def ensure(workload: Workload, cache: Path) -> Path:
    """Return the directory holding ``workload``'s files, generating it unless already complete.

    Args:
        workload: The workload.
        cache: The cache folder.

    Returns:
        The input directory of the workload.
    """
    data, marker = cache / workload.key, cache / f"{workload.key}.done"
    if marker.exists() and data.is_dir():
        return data
    marker.unlink(missing_ok=True)
    shutil.rmtree(data, ignore_errors=True)
    start = time.perf_counter()
    generate(workload, data)
    info = {**asdict(workload), "seed": SEED, "seconds": round(time.perf_counter() - start, 3)}
    marker.write_text(json.dumps(info, indent=1) + "\n")
    return data
