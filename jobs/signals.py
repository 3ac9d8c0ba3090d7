"""Runs that end early: SIGTERM or SIGINT to the launcher, or a worker process that dies.

A scheduler's timeout sends SIGTERM; Ctrl-C sends SIGINT. Either raises :class:`Stopped`
in the launcher's main thread, wherever it is (listing the input, waiting for the
runner, committing). The launcher then stops the runner's worker processes, takes back
what the run staged and exits with ``128 + signal number`` (143 for SIGTERM, 130 for
SIGINT), the shell's convention. A second signal during that clean-up is ignored, so
the clean-up itself is never cut short.

A DirectRunner worker process that dies (killed, out of memory) can leave the runner
waiting for it forever. Beam reports the death from one of its threads ("Worker
subprocess exited with return code N"); :func:`stop_on_signals` watches for that report
and raises :class:`WorkerDied` in the main thread, which the launcher handles as a stop.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Iterator

__all__ = [
    "STOP_SIGNALS",
    "Interrupted",
    "Stopped",
    "WORKER_EXIT",
    "WorkerDied",
    "ignore_stop_signals",
    "interruption",
    "stop_descendants",
    "stop_on_signals",
]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_WORKER_SIGNAL = signal.SIGUSR1  # sent to ourselves to wake the main thread when a worker dies
WORKER_EXIT = re.compile(r"Worker subprocess exited with return code (-?\d+)")


class Interrupted(BaseException):
    """The run ended early; like KeyboardInterrupt, no ``except Exception`` may swallow it."""

    exit_code = 1


class Stopped(Interrupted):
    """The launcher was asked to stop by a signal.

    Attributes:
        signum: The signal's number.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """``128 + signum``: 143 for SIGTERM, 130 for SIGINT."""
        return 128 + self.signum


class WorkerDied(Interrupted):
    """A runner worker process exited while the pipeline ran.

    Attributes:
        returncode: Its exit status as Beam saw it (``128 + n`` or ``-n``: killed by signal n).
    """

    def __init__(self, returncode: int) -> None:
        super().__init__(describe_exit(returncode))
        self.returncode = returncode


def describe_exit(returncode: int) -> str:
    """``a worker process died (killed by SIGKILL, ...)`` for a worker's exit status."""
    signum = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else None
    if not signum:
        return f"a worker process died (exit code {returncode})"
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    cause = ", e.g. out of memory or killed by hand" if name == "SIGKILL" else ""
    return f"a worker process died (killed by {name}{cause})"


_died: list[int] = []
_raised: list[Interrupted] = []


def interruption() -> Interrupted | None:
    """The stop this process has raised, if any (a runner may have re-raised it as another error)."""
    return _raised[0] if _raised else None


def _raise(signum: int, frame: object) -> None:
    ignore_stop_signals()
    _raised.append(WorkerDied(_died[0] if _died else 1) if signum == _WORKER_SIGNAL else Stopped(signum))
    raise _raised[-1]


def _watch(previous):  # noqa: ANN001, ANN202 (threading.excepthook's type)
    def hook(args: threading.ExceptHookArgs) -> None:
        previous(args)  # prints the traceback (to the console's log file unless --verbose)
        found = WORKER_EXIT.search(str(args.exc_value))
        if found and int(found.group(1)) != 0 and not _died:
            _died.append(int(found.group(1)))
            signal.pthread_kill(threading.main_thread().ident, _WORKER_SIGNAL)

    return hook


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Raise :class:`Stopped` on SIGTERM/SIGINT, :class:`WorkerDied` when a worker dies (main thread only)."""
    previous = {signum: signal.signal(signum, _raise) for signum in (*STOP_SIGNALS, _WORKER_SIGNAL)}
    hook, threading.excepthook = threading.excepthook, _watch(threading.excepthook)
    _died.clear()
    _raised.clear()
    try:
        yield
    finally:
        threading.excepthook = hook
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def ignore_stop_signals() -> None:
    """Ignore further SIGTERM/SIGINT (from the first one on, the launcher is cleaning up)."""
    for signum in (*STOP_SIGNALS, _WORKER_SIGNAL):
        signal.signal(signum, signal.SIG_IGN)


def _children() -> dict[int, list[int]]:
    """``parent pid → child pids`` of every process (Linux ``/proc``; empty elsewhere)."""
    tree: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", encoding="utf-8") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            tree.setdefault(int(fields[1]), []).append(int(name))
    return tree


def descendants(pid: int | None = None) -> list[int]:
    """Every process below ``pid`` (default this one), children first."""
    tree, found, todo = _children(), [], [os.getpid() if pid is None else pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_descendants(grace: float = 5.0) -> None:
    """SIGTERM every process this launcher started (DirectRunner's workers), SIGKILL any left after ``grace``."""
    pids = descendants()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    if state == "Z":  # a zombie has exited; reap it if it is ours
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True
