"""Run one command and report its wall time and the peak RSS of its largest process.

Usage: ``python -m benchmarks.measure [--json FILE] [--timeout S] -- CMD ...``

The peak RSS is ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` after every descendant has been
reaped. Linux folds a reaped child's own ``ru_maxrss`` and its reaped children's into the
parent's ``RUSAGE_CHILDREN`` as a *maximum*, so this is the RSS of the largest single process
of the whole tree (not a sum), DirectRunner's multi-process workers included — provided each
one is reaped by someone in the tree. To make that hold even for workers whose parent exits
without waiting for them, this wrapper makes itself a *child subreaper*
(``prctl(PR_SET_CHILD_SUBREAPER)``): orphaned descendants are re-parented to it, and it reaps
them (ending any still alive ``--linger`` seconds after the command exits). As a cross-check it
also samples ``/proc`` every 0.2 s: the largest RSS of any one descendant seen, and the most
descendants alive at once (sampling can miss a short peak, so it can only under-estimate).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

__all__ = ["descendants", "main", "measure"]

_PR_SET_CHILD_SUBREAPER = 36
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _make_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def descendants(root: int) -> list[int]:
    """Pids of all live descendants of ``root`` (from ``/proc/*/stat``), excluding ``root``."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            found.append(pid)
            todo.append(pid)
    return found


def _rss_kb(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_KB
    except (OSError, IndexError, ValueError):
        return 0


class _Sampler(threading.Thread):
    """Polls this process's descendants: largest single RSS and most processes alive at once."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval, self.max_rss_kb, self.max_procs = interval, 0, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self._stop_event.is_set():
            pids = descendants(me)
            self.max_procs = max(self.max_procs, len(pids))
            self.max_rss_kb = max([self.max_rss_kb, *(_rss_kb(p) for p in pids)])
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _reap_all(linger: float) -> int:
    """Reap every remaining descendant; ones still alive after ``linger`` s get SIGKILL."""
    deadline, leftovers = time.monotonic() + linger, 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return leftovers
        if pid:
            continue
        if time.monotonic() > deadline:
            for p in descendants(os.getpid()):
                leftovers += 1
                os.kill(p, signal.SIGKILL)  # only processes this wrapper's command started
            deadline = float("inf")
        time.sleep(0.05)


def measure(cmd: list[str], timeout: float | None = None, linger: float = 10.0) -> dict:
    """Run ``cmd`` as a child and measure it.

    Args:
        cmd: The command line.
        timeout: Seconds after which the command's process group is killed; ``None``: no limit.
        linger: Seconds to wait for descendants still running after the command exits.

    Returns:
        ``returncode`` (``None`` on timeout), ``wall_s``, ``cpu_s`` (user + system, all reaped
        descendants), ``max_rss_mb`` (largest process, from getrusage), ``sampled_max_rss_mb``,
        ``sampled_max_procs``, ``subreaper`` and ``killed_leftovers``.
    """
    subreaper = _make_subreaper()
    sampler = _Sampler()
    sampler.start()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, start_new_session=True)
    try:
        returncode: int | None = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        returncode = None
    wall = time.perf_counter() - start
    leftovers = _reap_all(linger)
    sampler.stop()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "returncode": returncode,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "max_rss_mb": usage.ru_maxrss / 1024,
        "sampled_max_rss_mb": sampler.max_rss_kb / 1024,
        "sampled_max_procs": sampler.max_procs,
        "subreaper": subreaper,
        "killed_leftovers": leftovers,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: measure ``CMD`` and print (or write) the result as JSON.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The command's exit status (124 on timeout).
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.measure", description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write the result here instead of stdout")
    parser.add_argument("--timeout", type=float, default=None, help="kill the command after this many seconds")
    parser.add_argument("--linger", type=float, default=10.0, help="wait this long for leftover descendants")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ...")
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("no command given")
    result = measure(cmd, args.timeout, args.linger)
    text = json.dumps(result)
    if args.json:
        args.json.write_text(text + "\n")
    else:
        print(text)
    return 124 if result["returncode"] is None else result["returncode"]


if __name__ == "__main__":
    sys.exit(main())
