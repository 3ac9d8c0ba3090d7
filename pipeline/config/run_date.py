"""Filling ``{run_date}`` placeholders in ``--input``, so a nightly job reads the day's drop folder.

``{run_date}`` becomes ``YYYY-MM-DD``; ``{run_date:FORMAT}`` is formatted with
``strftime`` codes, e.g. ``{run_date:%Y/%m/%d}`` → ``2026/01/02``. ``{{`` and ``}}``
stand for literal braces. Anything else in braces is an error, so a typo never turns
into a path that silently matches nothing.
"""

from __future__ import annotations

import datetime as dt
import string

__all__ = ["PLACEHOLDER", "fill_run_date", "has_placeholder"]

PLACEHOLDER = "run_date"


def has_placeholder(pattern: str) -> bool:
    """Whether ``pattern`` holds a ``{...}`` placeholder (``{{``/``}}`` escapes do not count).

    Raises:
        ValueError: if the braces are unbalanced.
    """
    return any(field is not None for _, field, _, _ in string.Formatter().parse(pattern))


def fill_run_date(pattern: str, run_date: dt.date) -> str:
    """Return ``pattern`` with every ``{run_date}`` / ``{run_date:FORMAT}`` filled in.

    Args:
        pattern: An input pattern, possibly with placeholders.
        run_date: The date to fill in.

    Returns:
        The pattern with placeholders replaced and ``{{``/``}}`` unescaped.

    Raises:
        ValueError: with a one-line message for an unknown placeholder, a conversion
            (``!r``), a format without ``%`` codes, or unbalanced braces.
    """
    parts = []
    for literal, field, spec, conversion in string.Formatter().parse(pattern):
        parts.append(literal)
        if field is None:
            continue
        if field != PLACEHOLDER or conversion:
            shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"unknown placeholder {shown}; only {{run_date}} and {{run_date:%Y/%m/%d}}-style work")
        if spec and "%" not in spec:
            raise ValueError(f"{{run_date:{spec}}} needs strftime codes such as %Y, %m, %d")
        parts.append(format(run_date, spec) if spec else run_date.isoformat())
    return "".join(parts)
