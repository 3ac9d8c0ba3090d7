"""Dead letters: an element that raised is retried piece by piece, and what still fails becomes rows.

Beam's own ``ParDo(...).with_exception_handling()`` catches the exception; a batch that
raised is split and retried one dataset (or one file) at a time, so only the culprit
fails, as a ``failed`` row with a one-line reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import apache_beam as beam
import pyarrow as pa

from pipeline.config.errors import one_line
from pipeline.config.settings import JobConfig
from pipeline.discover.layout import DatasetRef, input_layout
from pipeline.fit.result import failed
from pipeline.graph.fit_batches import now
from pipeline.observe.counters import Counters
from pipeline.read.parquet import DatasetError
from pipeline.reduce.batches import Batch, Partials, shard_of
from pipeline.reduce.moments import empty
from pipeline.table.schema import results_table

__all__ = ["DeadLetterToRowsFn", "dead_parts", "error_message", "flattened", "guarded", "singles"]


def error_message(error_info: tuple) -> str:
    """One line from a dead letter's ``(type, repr, traceback lines)``."""
    exc_type, exc_repr, trace = error_info
    last = one_line(trace[-1] if trace else exc_repr, 1000)
    message = last.split(": ", 1)[1] if ": " in last else last
    if isinstance(exc_type, type) and issubclass(exc_type, DatasetError):
        return one_line(message)
    return one_line(f"{getattr(exc_type, '__name__', exc_type)}: {message}")


class DeadLetterToRowsFn(beam.DoFn):
    """Turns a dead letter (an element that raised even alone, and why) into ``failed`` rows."""

    def __init__(self, config: JobConfig) -> None:
        self._config = config
        self._counters = None  # Counters, built in setup()

    def setup(self) -> None:
        """Build the metrics collector."""
        self._counters = Counters()

    def process(self, dead_letter: tuple) -> Iterator[pa.Table]:
        """Yield one ``failed`` row per dataset the dead element held (a file: its relative path)."""
        element, error_info = dead_letter
        message = error_message(error_info)
        if isinstance(element, Batch):
            named = [*zip(element.datasets, element.sources, strict=True), *((f[0], f[1]) for f in element.failed)]
        else:
            named = []
            layout = input_layout(self._config.input, self._config.output)
            for item in element if isinstance(element, list) else [element]:
                if isinstance(item, DatasetRef):
                    named.append((item.dataset, item.source))
                else:  # a file of a long table: its rows belong to no dataset now
                    named.append((layout.relative(item), item))
                    message = f"file could not be read, its rows are in no dataset: {message}"
        if named:
            datasets, sources = zip(*named, strict=True)
            table = results_table(datasets, sources, [failed(message)] * len(named), self._config.run_id, now())
            self._counters.count(table)
            yield table


def dead_parts(dead_letter: tuple) -> Iterator[tuple[int, Partials]]:
    """A part file that raised even alone fails its whole dataset: a failure for the merge, not a row.

    Part files of one directory dataset are read separately and merged by
    :class:`~pipeline.reduce.batches.MergePartialsFn`. A part that raised must reach
    that merge as the reason its dataset fails, so that the dataset ends as exactly one
    ``failed`` row naming the part, never as one ``failed`` row beside one ``ok`` row
    fitted from the other parts.

    Yields:
        ``(shard, Partials)`` holding only the failure, keyed like the readable parts.
    """
    element, error_info = dead_letter
    message = error_message(error_info)
    for ref in element if isinstance(element, list) else [element]:
        part = ref.paths[0]
        named = part[len(ref.source) + 1 :] if part.startswith(ref.source + "/") else part
        failure = (ref.dataset, ref.source, part, f"{named}: {message}")
        yield shard_of(ref.dataset), Partials((), (), (), empty(0), (failure,))


def guarded(
    inputs: beam.PCollection | list[beam.PCollection], label: str, fn: beam.DoFn, split: Callable[[object], Iterable]
) -> tuple[list[beam.PCollection], list[beam.PCollection]]:
    """``ParDo(fn)`` over each input with dead letters; a failed element is retried piece by piece.

    The outputs are left apart, the first input's good ones first, for the next step to
    take one by one: Beam's portable local runner (DirectRunner's default) runs every
    multi-input ``Flatten`` in the runner, so flattening here would ship every read batch
    (the row form's raw rows: 1.8 GB on 50M rows) out of the worker and back before the
    fit. Steps on the second and later inputs are labelled ``{label}2``, ``{label}3``, ….

    Returns:
        The outputs (two per input: its good ones, then those of its retried pieces),
        and the dead letters of the pieces that failed on their own (one per input).
    """
    outputs, dead_letters = [], []
    for i, pcoll in enumerate(inputs if isinstance(inputs, list) else [inputs]):
        name = label if i == 0 else f"{label}{i + 1}"
        good, dead = pcoll | name >> beam.ParDo(fn).with_exception_handling()
        retried, still_dead = (
            dead
            | f"{name}Split" >> beam.FlatMap(lambda dead_letter: split(dead_letter[0]))
            | f"{name}OneByOne" >> beam.ParDo(fn).with_exception_handling()
        )
        outputs += [good, retried]
        dead_letters.append(still_dead)
    return outputs, dead_letters


def flattened(pcolls: list[beam.PCollection], label: str) -> beam.PCollection:
    """One PCollection of ``pcolls`` (where a step needs one input: a merge, a grouping)."""
    return tuple(pcolls) | label >> beam.Flatten()


def singles(items: list) -> list[list]:
    """Split a batch of items into one-item batches (the retry of a batch that raised)."""
    return [[item] for item in items]
