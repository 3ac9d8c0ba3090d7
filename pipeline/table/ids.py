"""The output's id check: exactly one row per dataset found, for both outputs.

Beam-free, so that the Parquet commit (:mod:`pipeline.table.write`) and the BigQuery
load (:mod:`pipeline.table.bigquery`) refuse a lost or duplicated row the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["check_ids"]

KEPT = "nothing was committed and the previous partition is kept (rerun the date)"


def _listed(label: str, ids: list[str]) -> str:
    return f"{label} {', '.join(map(repr, ids[:5]))}{', ...' if len(ids) > 5 else ''}"


def check_ids(expected_ids: Sequence[str] | None, written_ids: pa.Array | Sequence[str], outcome: str = KEPT) -> None:
    """Refuse rows that are not exactly one per dataset found.

    With file and directory grouping the written ids must be exactly the ids discovery
    found, each once; with column grouping (``expected_ids`` is ``None``: ids known only
    after reading) each id must appear once.

    Args:
        expected_ids: The dataset ids discovery found, or ``None``.
        written_ids: The ``dataset`` of every row written (or about to be loaded).
        outcome: What the refusal leaves behind, ending the error's one line.

    Raises:
        RuntimeError: one line naming the ids missing, duplicated or not found by discovery.
    """
    written = written_ids if isinstance(written_ids, pa.Array) else pa.array(list(written_ids), pa.string())
    counts = pc.value_counts(written)
    repeated = counts.filter(pc.greater(counts.field("counts"), 1)).field("values").to_pylist()
    problems = [("duplicated", sorted(repeated))]
    if expected_ids is not None:
        found = pa.array(list(expected_ids), pa.string())
        values = counts.field("values")
        problems.append(("missing", sorted(found.filter(pc.invert(pc.is_in(found, values))).to_pylist())))
        problems.append(
            ("not found by discovery", sorted(values.filter(pc.invert(pc.is_in(values, found))).to_pylist()))
        )
    shown = [_listed(label, ids) for label, ids in problems if ids]
    if shown:
        found_text = "" if expected_ids is None else f" for the {len(expected_ids)} datasets found"
        raise RuntimeError(
            f"{len(written)} rows{found_text}, {'; '.join(shown)}: a row was lost or duplicated, so {outcome}"
        )
