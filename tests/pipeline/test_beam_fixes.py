"""The guard against Beam's data stream dropping bytes written during a flush."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from apache_beam.runners.worker.data_plane import TimeBasedBufferingClosableOutputStream

from pipeline.graph.beam_fixes import guard_data_stream_flush
from tests.conftest import ROOT

CHUNKS = [bytes([i]) * (1 << 18) for i in range(20)]


def send(chunks: list[bytes]) -> bytes:
    """What Beam's stream delivers of ``chunks`` while its periodic flush waits on a full queue.

    The runner writes a bundle's input chunk by chunk; the slow callback stands in for a
    full gRPC send queue: the README's reproduction.
    """
    received = []

    def slow_send(data: bytes) -> None:
        time.sleep(0.2)
        received.append(data)

    out = TimeBasedBufferingClosableOutputStream(
        close_callback=received.append, flush_callback=slow_send, time_flush_threshold_ms=50
    )
    for chunk in chunks:
        out.write(chunk)
        time.sleep(0.02)
    out.close()
    time.sleep(0.5)  # let a last periodic flush finish
    return b"".join(received)


def test_guarded_stream_delivers_every_byte_in_order() -> None:
    guard_data_stream_flush()
    delivered = send(CHUNKS)
    assert delivered == b"".join(CHUNKS)


def test_guard_is_idempotent() -> None:
    guard_data_stream_flush()
    write = TimeBasedBufferingClosableOutputStream.write
    guard_data_stream_flush()
    assert TimeBasedBufferingClosableOutputStream.write is write


def test_building_the_pipeline_installs_the_guard(tmp_path: Path) -> None:
    """In a fresh interpreter: wiring tapefit's graph (not running it) guards Beam's stream."""
    script = textwrap.dedent(
        f"""
        import datetime as dt
        import apache_beam as beam
        from apache_beam.runners.worker.data_plane import TimeBasedBufferingClosableOutputStream as Stream
        from pipeline.config.settings import FitConfig, JobConfig
        from pipeline.graph.build import build

        before = getattr(Stream, "_tapefit_guarded", False)
        config = JobConfig(
            input={str(tmp_path)!r}, output={str(tmp_path / "table")!r}, run_date="2026-01-01",
            group_by="file", key_column=None, x_column="x", y_column="y", fit=FitConfig(),
            run_id="r1", started_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        )
        build(beam.Pipeline(), config)
        print(before, getattr(Stream, "_tapefit_guarded", False))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120, cwd=ROOT
    )
    assert done.stdout.split() == ["False", "True"]


def test_unguarded_beam_still_loses_bytes() -> None:
    """A tripwire: when Beam fixes its stream, this starts to fail and the guard can go."""
    script = "from tests.pipeline.test_beam_fixes import CHUNKS, send; print(len(send(CHUNKS)), len(b''.join(CHUNKS)))"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120, cwd=ROOT
    )
    delivered, written = map(int, done.stdout.split())
    took = time.monotonic() - started
    assert delivered < written, f"Beam delivered all {written} bytes ({took:.1f} s): drop the guard"
