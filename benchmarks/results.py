"""Per-dataset results of a contender, as a small Parquet file (or tapefit's own output table)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["ALL_ROWS", "FIT_SCHEMA", "Fit", "read_fits", "write_fits"]

ALL_ROWS = "*"  # the id of a row that only counts rows over all datasets (read-only contenders)
FIT_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("w", pa.float64()),
        ("b", pa.float64()),
        ("n_rows", pa.int64()),
        ("status", pa.string()),
        ("seconds", pa.float64()),
    ]
)


@dataclass(frozen=True)
class Fit:
    """One dataset's result.

    Attributes:
        w: Slope, or ``None`` when the contender gives none.
        b: Intercept, or ``None``.
        n_rows: Rows the contender used.
        status: ``ok`` or the contender's own status word.
        seconds: Time spent on this dataset alone, when the contender measures it.
    """

    w: float | None
    b: float | None
    n_rows: int | None
    status: str = "ok"
    seconds: float | None = None


def write_fits(path: Path, fits: dict[str, Fit]) -> None:
    """Write ``fits`` (id → Fit) as a Parquet file with :data:`FIT_SCHEMA`."""
    ids = list(fits)
    columns = {"dataset": ids}
    for name in FIT_SCHEMA.names[1:]:
        columns[name] = [getattr(fits[i], name) for i in ids]
    pq.write_table(pa.table(columns, schema=FIT_SCHEMA), path)


def read_fits(path: Path) -> dict[str, Fit]:
    """Read results from a file written by :func:`write_fits` or a tapefit partition directory.

    Args:
        path: A Parquet file, or a directory of them (files starting ``_`` or ``.`` are skipped).

    Returns:
        id → Fit; columns a source lacks are ``None`` (status defaults to ``ok``).
    """
    table = pq.read_table(path)
    rows = table.num_rows

    def column(name: str) -> list:
        return table.column(name).to_pylist() if name in table.column_names else [None] * rows

    status = [s or "ok" for s in column("status")]
    return {
        str(d): Fit(w, b, n, s, t)
        for d, w, b, n, s, t in zip(
            column("dataset"), column("w"), column("b"), column("n_rows"), status, column("seconds"), strict=True
        )
    }
