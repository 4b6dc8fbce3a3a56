"""Streaming the slices into ``{id}.raw`` and hashing them, overlapped in background threads.

Per slice: read (``np.fromfile`` or a pydicom decoder), convert to the element type, hash
(sha256), write, and hand to ``tee``. Reading, numpy conversion, hashing and writing all
release the GIL, so they run in threads at once instead of one after another: decoder threads
prepare the next slices while one thread hashes and another writes (and tees) the slices
before them, in order. The caller's thread stays free for work of its own meanwhile (the tag
dump). Only a bounded window of slices is ever in memory.

Errors are those of the plain loop it replaces: the first slice in volume order that cannot be
read; else the first failure of writing (or of ``tee``). Slices are still read to the end after
a write failure, so that an unreadable slice is reported in preference, as before.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .pixels import element_values, read_stored
from .scan import SliceHeader

#: Slices queued for each of the hashing and writing threads.
_QUEUED = 4


def slice_bytes(header: SliceHeader, element_type: str) -> np.ndarray:
    """One slice as written: its modality values in the element type, C-contiguous."""
    values = element_values(read_stored(header), header.slope, header.intercept, element_type)
    return np.ascontiguousarray(values)


class RawStream:
    """Writes ``slices`` into ``path`` from background threads: ``start()``, then ``finish()``."""

    def __init__(
        self,
        slices: Sequence[SliceHeader],
        element_type: str,
        path: Path,
        tee: Callable[[bytes], None] | None = None,
        decoders: int = 2,
    ) -> None:
        self._slices = slices
        self._element_type = element_type
        self._path = path
        self._tee = tee
        self._decoders = max(1, decoders)
        self._digest = hashlib.sha256()
        self._read_error: BaseException | None = None
        self._write_error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="raw-stream", daemon=True)

    def start(self) -> RawStream:
        self._thread.start()
        return self

    def abort(self) -> None:
        """Stop reading further slices (the caller is failing anyway)."""
        self._stop.set()

    def finish(self) -> str:
        """Wait for the end; the sha256 of what was written, or the first error (module docstring)."""
        self._thread.join()
        if self._read_error is not None:
            raise self._read_error
        if self._write_error is not None:
            raise self._write_error
        return self._digest.hexdigest()

    def _hash(self, chunks: queue.Queue[np.ndarray | None]) -> None:
        while (chunk := chunks.get()) is not None:
            self._digest.update(memoryview(chunk).cast("B"))

    def _write(self, chunks: queue.Queue[np.ndarray | None], out: BinaryIO) -> None:
        try:
            while (chunk := chunks.get()) is not None:
                out.write(memoryview(chunk).cast("B"))
                if self._tee is not None:
                    self._tee(chunk.tobytes())
        except BaseException as exc:  # handed to finish()
            self._write_error = exc
            while chunks.get() is not None:  # drain so the reader never blocks
                pass

    def _run(self) -> None:
        to_hash: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=_QUEUED)
        to_write: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=_QUEUED)
        with self._path.open("wb") as out:
            sinks = [
                threading.Thread(target=self._hash, args=(to_hash,), name="raw-hash", daemon=True),
                threading.Thread(target=self._write, args=(to_write, out), name="raw-write", daemon=True),
            ]
            for sink in sinks:
                sink.start()
            try:
                self._read_all(to_hash, to_write)
            except BaseException as exc:  # reported by finish()
                self._read_error = exc
            finally:
                to_hash.put(None)
                to_write.put(None)
                for sink in sinks:
                    sink.join()

    def _read_all(
        self, to_hash: queue.Queue[np.ndarray | None], to_write: queue.Queue[np.ndarray | None]
    ) -> None:
        pending: deque[Future[np.ndarray]] = deque()
        upcoming = iter(self._slices)
        window = 2 * self._decoders + 2
        with ThreadPoolExecutor(self._decoders, thread_name_prefix="raw-read") as pool:
            try:
                while True:
                    while len(pending) < window and not self._stop.is_set():
                        header = next(upcoming, None)
                        if header is None:
                            break
                        pending.append(pool.submit(slice_bytes, header, self._element_type))
                    if not pending:
                        return
                    chunk = pending.popleft().result()
                    if self._write_error is None:
                        to_hash.put(chunk)
                        to_write.put(chunk)
            finally:
                for future in pending:
                    future.cancel()
