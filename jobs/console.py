"""A quiet console: tapefit's own lines, and real warnings and errors, but no start-up noise.

TensorFlow's native code writes straight to file descriptor 2 as it loads, before any
Python logging setting applies: on a machine without GPUs that is "Could not find
cuda drivers", "failed call to cuInit" and absl's own preamble. Those lines say
nothing about the run, so :func:`quiet_stderr` passes file descriptor 2 through a
filter that drops them (and every native INFO line), and lets everything else through:
tapefit's own lines, Python warnings, and any other native warning or error. Worker
processes that the launcher starts inherit the filtered descriptor, so their noise goes
the same way. ``--verbose`` turns the filter off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator

__all__ = ["NOISE", "is_noise", "quiet_stderr", "set_up_logging"]

# Lines that are noise on every CPU-only run; anything else on stderr is shown.
NOISE = tuple(
    re.compile(pattern)
    for pattern in (
        r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
        # native INFO lines (absl format: I, month-day or 0000, time, thread, file:line])
        r"^I\d{4} \d{2}:\d{2}:[\d.]+\s+\d+ \S+:\d+\] ",
        # no GPU here: CUDA's and its libraries' start-up complaints
        r"^[WE]\d{4} [\d:.]+\s+\d+ \S+:\d+\] (failed call to cuInit|Unable to register cu\w+ factory"
        r"|TF-TRT Warning: Could not find TensorRT|computation placer already registered)",
        r"^\S*oneDNN custom operations are on",
        r"^To enable the following instructions: .* rebuild TensorFlow",
        r"^This TensorFlow binary is optimized to use available CPU instructions",
    )
)


def is_noise(line: str) -> bool:
    """Whether one stderr line is known start-up noise."""
    return any(pattern.search(line) for pattern in NOISE)


def set_up_logging(verbose: bool) -> None:
    """Python logging for a launcher: warnings and up (everything with ``--verbose``)."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # same numbers on every CPU
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # native INFO off; warnings and errors stay
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not verbose:
        for handler in logging.getLogger().handlers:
            handler.addFilter(lambda record: "apitools not found" not in record.getMessage())


def _pump(source: int, target: int) -> None:
    """Copy lines from ``source`` to ``target``, leaving out the noise."""
    with os.fdopen(source, "rb", buffering=0) as stream:
        pending = b""
        while chunk := stream.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not is_noise(line.decode("utf-8", "replace")))
            if kept:
                os.write(target, kept)
        if pending and not is_noise(pending.decode("utf-8", "replace")):
            os.write(target, pending)


@contextlib.contextmanager
def quiet_stderr(enabled: bool = True) -> Iterator[None]:
    """Filter file descriptor 2 (this process and its children) while the body runs.

    Args:
        enabled: ``False`` runs the body with stderr untouched (``--verbose``).
    """
    if not enabled:
        yield
        return
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    pump = threading.Thread(target=_pump, args=(read_end, original), name="tapefit-stderr", daemon=True)
    pump.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last write end held here: the pump drains and stops
        pump.join(timeout=5)
        os.close(original)
