"""A quiet console: tapefit's own lines, and real warnings and errors, but no start-up noise.

TensorFlow's native code writes straight to file descriptor 2 as it loads, before any
Python logging setting applies: on a machine without GPUs that is "Could not find
cuda drivers", "failed call to cuInit" and absl's own preamble. Those lines say
nothing about the run, so :func:`quiet_stderr` passes file descriptor 2 through a
filter that drops them (and every native INFO line), and lets everything else through:
tapefit's own lines, Python warnings, and any other native warning or error. Worker
processes that the launcher starts inherit the filtered descriptor, so their noise goes
the same way. ``--verbose`` turns the filter off.

No traceback reaches the console either: a Python traceback written to file descriptor 2
(by this process, a Beam thread dying, or a worker process) is diverted, whole, into a
log file, :func:`log_file` names it, and the launcher names it in its one last line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator

__all__ = [
    "NOISE",
    "TracebackDiverter",
    "divert_everything",
    "is_noise",
    "log_file",
    "quiet_stderr",
    "set_up_logging",
    "write_to_log",
]

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
            handler.addFilter(_console_record)
        threading.excepthook = _log_thread_exception


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    """A thread that dies (Beam's, when a worker is lost) writes its traceback to the log file only."""
    import traceback

    name = args.thread.name if args.thread is not None else "?"
    text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
    write_to_log(f"Exception in thread {name}:\n{text}")


def _console_record(record: logging.LogRecord) -> bool:
    """Whether a log record is shown: one with a traceback goes, whole, to the log file instead."""
    if "apitools not found" in record.getMessage():
        return False
    # A traceback, or an error Beam logs on its way to failing the run (the launcher's last
    # line says why it failed), goes whole to the log file.
    if record.exc_info or (record.levelno >= logging.ERROR and record.name.startswith("apache_beam")):
        write_to_log(logging.Formatter("%(levelname)s %(name)s: %(message)s").format(record))
        return False
    return True


# Where a traceback starts, and the lines that continue one (indented frames, chained causes).
_TRACEBACK_START = re.compile(r"^(Traceback \(most recent call last\):|Exception in thread .*:)$")
_TRACEBACK_GOES_ON = re.compile(
    r"^(\s|Traceback \(most recent call last\):|During handling of the above exception"
    r"|The above exception was the direct cause|$)"
)
# A shell's word for a child it lost to a signal (DirectRunner starts workers through sh).
_WORKER_DEATH = re.compile(r"^(Killed|Terminated|Aborted|Segmentation fault)( \(core dumped\))?$")
_log: dict[str, str] = {}
_log_lock = threading.Lock()  # the pump thread and the main thread both write to the log
_closing = threading.Event()  # the run is being stopped: whatever its processes still print goes to the log


def divert_everything() -> None:
    """From now on, send every stderr line to the log file (the workers being stopped have nothing to say)."""
    _closing.set()


def log_file() -> str | None:
    """The file the console's tracebacks went to in this process, or None if there were none."""
    return _log.get("path")


def write_to_log(text: str) -> str:
    """Append ``text`` to this process's log file (created if need be); return its path."""
    with _log_lock:
        path = _log.get("path")
        if path is None:
            fd, path = tempfile.mkstemp(prefix="tapefit-", suffix=".log")
            os.close(fd)
            _log["path"] = path
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text if text.endswith("\n") else text + "\n")
    return path


class TracebackDiverter:
    """Splits a stream of stderr lines: tracebacks to a log file, the rest to the console.

    A traceback runs from ``Traceback (most recent call last):`` (or ``Exception in
    thread …:``) through its indented frames to its first unindented line, the exception
    itself, which ends it.
    """

    def __init__(self) -> None:
        self._inside = False
        self._after = False  # just past a traceback: a blank line or a chained cause still belongs to it

    def divert(self, line: str) -> bool:
        """Whether ``line`` belongs in the log (and write it there)."""
        if line.startswith("tapefit: "):  # tapefit's own line (progress, the last line) always shows
            self._inside = self._after = False
            return False
        if _closing.is_set():
            self._write(line)
            return True
        if not self._inside and (_TRACEBACK_START.match(line) or (self._after and _TRACEBACK_GOES_ON.match(line))):
            self._inside = True
        elif self._inside and not _TRACEBACK_GOES_ON.match(line):
            self._inside = False  # the exception line: the traceback's last
            self._after = True
            self._write(line)
            return True
        else:
            self._after = False
        if self._inside or _WORKER_DEATH.match(line):
            self._write(line)
            return True
        return False

    def _write(self, line: str) -> None:
        write_to_log(line)


def _pump(source: int, target: int) -> None:
    """Copy lines from ``source`` to ``target``, leaving out the noise and diverting tracebacks."""
    diverter = TracebackDiverter()

    def keep(raw: bytes) -> bool:
        line = raw.decode("utf-8", "replace")
        return not is_noise(line) and not diverter.divert(line)

    with os.fdopen(source, "rb", buffering=0) as stream:
        pending = b""
        while chunk := stream.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if keep(line))
            if kept:
                os.write(target, kept)
        if pending and keep(pending):
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
    _closing.clear()
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
