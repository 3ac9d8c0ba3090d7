"""Named points where tests can stop a real run, to send it a real signal there.

``TAPEFIT_PAUSE_AT=commit`` (comma-separated names) makes a run that reaches
:func:`checkpoint("commit") <checkpoint>` write its pid to ``$TAPEFIT_PAUSE_MARKER.commit``
and sleep ``$TAPEFIT_PAUSE_SECONDS`` (default 60) before going on, so that a test can
SIGTERM or SIGKILL it exactly there. Unset (always, outside the fault-injection tests),
a checkpoint costs one dictionary look-up.

The points: ``discovery`` (the launcher has listed the input), ``fitting`` (a batch is
about to be fitted), ``commit`` (the commit lock is held, nothing moved yet) and
``between_renames`` (a local commit has moved the old partition aside and not yet
moved the new one in).
"""

from __future__ import annotations

import os
import time

__all__ = ["PAUSE_ENV", "checkpoint"]

PAUSE_ENV = "TAPEFIT_PAUSE_AT"


def checkpoint(name: str) -> None:
    """Pause here if ``$TAPEFIT_PAUSE_AT`` names ``name`` (see the module doc)."""
    wanted = os.environ.get(PAUSE_ENV)
    if not wanted or name not in wanted.split(","):
        return
    marker = os.environ.get("TAPEFIT_PAUSE_MARKER")
    if marker:
        with open(f"{marker}.{name}.tmp", "w", encoding="utf-8") as handle:
            handle.write(str(os.getpid()))
        os.replace(f"{marker}.{name}.tmp", f"{marker}.{name}")
    time.sleep(float(os.environ.get("TAPEFIT_PAUSE_SECONDS", "60")))
