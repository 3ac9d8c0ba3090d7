"""A fix for a Beam bug that silently drops a bundle's input on DirectRunner's gRPC modes.

Beam's portable runner (FnApiRunner, behind DirectRunner) sends a bundle's input to a
worker through a ``TimeBasedBufferingClosableOutputStream`` (its gRPC data channel
buffers up to ``DATA_BUFFER_TIME_LIMIT_MS = 1000``). A background thread flushes that
stream every second: ``flush()`` takes ``get()``, hands it to the send queue, then
``_clear()`` s the buffer. ``write()`` takes no lock, so whatever the runner's thread
writes while the send is in flight is cleared unsent. The send waits whenever the queue
holds its 100 MB, which is exactly when a stage's input is large: with
``--direct_running_mode multi_processing`` and the row form, whole batches of datasets
(~30 MB elements) vanished without an error (Beam 2.77.0; the in-process mode has no
such thread). ``guard_data_stream_flush`` makes ``write()`` take the flush lock, so a
write waits for an in-flight flush instead of being lost. README shows the reproduction.
"""

from __future__ import annotations

__all__ = ["guard_data_stream_flush"]


def guard_data_stream_flush() -> None:
    """Make Beam's time-based data stream's ``write`` wait for an in-flight flush (idempotent)."""
    from apache_beam.runners.worker import data_plane

    stream = data_plane.TimeBasedBufferingClosableOutputStream
    if getattr(stream, "_tapefit_guarded", False):
        return
    unguarded = stream.write  # the compiled OutputStream.write

    def write(self: stream, b: bytes, nested: bool = False) -> None:  # noqa: FBT001, FBT002 (Beam's signature)
        with self._flush_lock:
            unguarded(self, b, nested)

    stream.write = write
    stream._tapefit_guarded = True
