"""The reading threads: results in order, bounded work in flight, errors where they belong."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from pipeline.reduce.threads import Workers, available_cores


def test_results_come_in_input_order_even_when_later_items_finish_first() -> None:
    workers = Workers(3, "test")
    try:
        delays = [0.05, 0.03, 0.0, 0.02, 0.0, 0.01]

        def slow(i: int) -> tuple[int, str]:
            time.sleep(delays[i])
            return i, threading.current_thread().name

        results = list(workers.map(slow, range(len(delays))))
    finally:
        workers.close()
    assert [i for i, _ in results] == list(range(len(delays)))
    assert {name.split("_")[0] for _, name in results} == {"test"}  # on the pool's threads


def _recorded(count: int, taken: list[int]) -> Iterator[int]:
    """``range(count)``, each item noted in ``taken`` as it is taken."""
    for i in range(count):
        taken.append(i)
        yield i


def test_no_more_items_are_taken_than_the_threads_can_hold() -> None:
    workers = Workers(2, "test")
    taken, done = [], []
    try:
        for i in workers.map(lambda i: i * i, _recorded(10, taken)):
            done.append(i)
            assert len(taken) - len(done) <= workers.threads + 1  # the item being taken, and one per thread
    finally:
        workers.close()
    assert done == [i * i for i in range(10)]


def test_an_error_is_raised_in_order_and_the_rest_is_not_taken() -> None:
    workers = Workers(2, "test")
    taken, got = [], []

    def fail_at_three(i: int) -> int:
        if i == 3:
            raise ValueError("bad item 3")
        return i

    try:
        with pytest.raises(ValueError, match="bad item 3"):
            for i in workers.map(fail_at_three, _recorded(100, taken)):
                got.append(i)
    finally:
        workers.close()
    assert got == [0, 1, 2] and len(taken) <= 3 + workers.threads + 1


def test_one_thread_runs_inline_and_zero_means_one_per_core() -> None:
    caller = threading.get_ident()
    one = Workers(1, "test")
    assert list(one.map(lambda _: threading.get_ident(), range(3))) == [caller] * 3
    one.close()
    auto = Workers(0, "test")
    assert auto.threads == available_cores() >= 1
    auto.close()
