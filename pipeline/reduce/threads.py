"""A few threads for the numpy and Arrow work of reading, results kept in order.

Splitting a long table's chunk by key and reducing it to moments is numpy and Arrow
work that releases the GIL, so a second core can do one chunk while the reader
decodes the next. :class:`Workers` runs such work on a small thread pool with a
bounded number of chunks in flight and yields the results in input order: the
numbers, and the order in which they merge, are those of a loop on one thread.
"""

from __future__ import annotations

import ctypes
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["Workers", "available_cores"]

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


# glibc's mallopt parameter for the most heaps ("arenas") its malloc keeps.
_M_ARENA_MAX = -8


def _share_heaps() -> None:
    """Have new threads allocate from the heaps that exist, where the C library is glibc.

    glibc gives a thread that allocates while another holds the heap an arena of its
    own, and memory freed there is seldom handed back to the system: a long table's
    chunks, reduced on two threads, left a run's peak memory higher (200M rows: 2.50 GB,
    against 2.17 with this call and 2.01 with ``MALLOC_ARENA_MAX=1`` set before start).
    Elsewhere this does nothing.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): their allocators differ
        return
    mallopt(_M_ARENA_MAX, 1)


class Workers:
    """A pool of worker threads that maps in order.

    Args:
        threads: Worker threads; 0 for one per available core. With one, work runs
            inline on the caller's thread and no pool is made.
        name: Prefix of the threads' names.
    """

    def __init__(self, threads: int, name: str) -> None:
        self.threads = threads or available_cores()
        self._pool = None
        if self.threads > 1:
            _share_heaps()
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix=name)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``map(fn, items)``, with ``fn`` running on the pool while ``items`` yields the next item.

        At most one item more than there are threads is submitted and not yet yielded, so
        memory stays bounded; results come in the order of ``items``. An exception from
        ``fn`` is raised where its result would have been yielded, and the work still
        queued is cancelled.
        """
        if self._pool is None:
            yield from map(fn, items)
            return
        pending: deque[Future] = deque()
        try:
            for item in items:
                pending.append(self._pool.submit(fn, item))
                if len(pending) > self.threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

    def submit(self, fn: Callable[..., R], *args: object) -> Future:
        """Run ``fn(*args)`` on a thread (needs at least two threads); its future."""
        if self._pool is None:
            raise RuntimeError("one thread: nothing runs apart from the caller")
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        """Let the threads go (work already running finishes first)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
