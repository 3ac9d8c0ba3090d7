"""Progress of a local run: ``datasets done / total`` and the rate, every few seconds.

DirectRunner runs the pipeline inside ``wait_until_finish`` (in this process, or in
worker processes with ``--direct_running_mode multi_processing``), and its metrics are
only queryable at the end. So progress travels through a small folder instead: the
launcher names it in the environment variable :data:`ENV` before the run, worker
processes inherit it, and every :class:`ProgressTicker` (one per metrics collector)
rewrites its own file with its count at most once a second (a timer publishes the last
count of a burst, so counts are never more than a second stale). A :class:`ProgressReporter`
in the launcher sums those files and prints a line. Remote runners never see the
variable, so nothing is written there.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["ENV", "ProgressReporter", "ProgressTicker", "count_done", "report_progress"]

ENV = "TAPEFIT_PROGRESS_DIR"
_WRITE_EVERY_S = 1.0


class ProgressTicker:
    """Counts datasets finished by one worker and publishes the count, throttled.

    Args:
        folder: Where to write the count; ``None`` makes every call a no-op.
        clock: Seconds on a monotonic clock (tests pass a fake one).
    """

    def __init__(self, folder: str | None, clock: Callable[[], float] = time.monotonic) -> None:
        self._folder = folder
        self._clock = clock
        self._path = os.path.join(folder, f"{os.getpid()}-{uuid.uuid4().hex[:8]}") if folder else None
        self._done = 0
        self._written_at = float("-inf")
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None  # publishes a burst's last count, set in tick()

    @classmethod
    def from_environment(cls) -> ProgressTicker:
        """A ticker writing to the folder named by :data:`ENV` (a no-op when unset)."""
        return cls(os.environ.get(ENV) or None)

    def tick(self, count: int = 1) -> None:
        """Count ``count`` finished datasets; publish the count if a second has passed."""
        if self._path is None:
            return
        with self._lock:
            self._done += count
            now = self._clock()
            if now - self._written_at >= _WRITE_EVERY_S:
                self._written_at = now
                self._publish()
            elif self._timer is None:
                self._timer = threading.Timer(_WRITE_EVERY_S, self._flush)
                self._timer.daemon = True
                self._timer.start()

    def _flush(self) -> None:
        with self._lock:
            self._timer = None
            if self._path is not None:
                self._written_at = self._clock()
                self._publish()

    def _publish(self) -> None:
        try:
            temporary = f"{self._path}.tmp"
            with open(temporary, "w", encoding="ascii") as handle:
                handle.write(str(self._done))
            os.replace(temporary, self._path)
        except OSError:  # progress is best effort; never fail a fit over it
            self._path = None


def count_done(folder: str) -> int:
    """Sum the counts the tickers published in ``folder``."""
    done = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        if name.endswith(".tmp"):
            continue
        try:
            with open(os.path.join(folder, name), encoding="ascii") as handle:
                done += int(handle.read() or 0)
        except (OSError, ValueError):
            continue
    return done


class ProgressReporter:
    """Decides when to print a progress line and what it says.

    Nothing is printed during the first ``interval`` seconds, so short runs stay quiet;
    after that, one line every ``interval`` seconds.

    Args:
        total: Datasets expected, or ``None`` when unknown before reading (column grouping).
        done: Returns the datasets finished so far.
        interval: Seconds between lines (> 0).
        clock: Seconds on a monotonic clock (tests pass a fake one).
    """

    def __init__(
        self,
        total: int | None,
        done: Callable[[], int],
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._total = total
        self._done = done
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._next = self._started + interval

    def poll(self) -> str | None:
        """Return a progress line if one is due, else ``None``."""
        now = self._clock()
        if now < self._next:
            return None
        self._next = now + self._interval
        done = self._done()
        elapsed = now - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        if self._total:
            done = min(done, self._total)
            share = f"{done:,}/{self._total:,} datasets ({100 * done / self._total:.0f}%)"
            left = self._total - done
            eta = f" · about {left / rate:.0f} s left" if rate > 0 and left else ""
        else:
            share, eta = f"{done:,} datasets", ""
        return f"tapefit: progress {share} after {elapsed:.0f} s · {rate:.1f}/s{eta}"


@contextmanager
def report_progress(
    folder: str, total: int | None, interval: float, write: Callable[[str], None], tick_s: float = 0.5
) -> Iterator[None]:
    """Print progress lines from a background thread while the body runs.

    Args:
        folder: The folder the workers' tickers write to (named by :data:`ENV`).
        total: Datasets expected, or ``None``.
        interval: Seconds between lines; 0 or less reports nothing.
        write: Prints one line.
        tick_s: How often the thread checks whether a line is due.
    """
    if interval <= 0:
        yield
        return
    reporter = ProgressReporter(total, lambda: count_done(folder), interval)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(tick_s):
            line = reporter.poll()
            if line:
                write(line)

    thread = threading.Thread(target=loop, name="tapefit-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
