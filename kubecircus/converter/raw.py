"""Streaming the slices into ``{id}.raw`` and hashing them, overlapped in background threads.

Per slice: read (into a reused buffer, or ``np.fromfile``/a pydicom decoder), convert to the
element type, hash (sha256), write, and hand to ``tee``. Reading, numpy conversion, hashing and writing all
release the GIL, so they run in threads at once instead of one after another: decoder threads
prepare the next slices while one thread hashes and another writes (and tees) the slices
before them, in order. The caller's thread stays free for work of its own meanwhile (the tag
dump). Only a bounded window of slices is ever in memory: uncompressed slices are read into a
small pool of buffers that go back to the pool once hashed and written (``pixels.read_element_into``:
fresh arrays per slice cost more than all the rest of the work).

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

from .pixels import ELEMENT_DTYPES, element_values, read_element_into, read_stored
from .scan import SliceHeader

#: Slices queued for each of the hashing and writing threads.
_QUEUED = 4


class _Slot:
    """A reusable slice buffer: handed to the hash and the write thread, free once both are done."""

    def __init__(self, nbytes: int, free: queue.SimpleQueue[_Slot]) -> None:
        self.buffer = np.empty(nbytes, np.uint8)
        self._free = free
        self._users = 0
        self._lock = threading.Lock()

    def hand_out(self, users: int) -> None:
        self._users = users

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._users == 0
        if last:
            self._free.put(self)


_Item = tuple[np.ndarray, "_Slot | None"]


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
        self._free: queue.SimpleQueue[_Slot] = queue.SimpleQueue()
        self._slots = 0
        itemsize = ELEMENT_DTYPES[element_type].itemsize
        self._slot_bytes = slices[0].rows * slices[0].columns * itemsize if slices else 0

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

    def _hash(self, chunks: queue.Queue[_Item | None]) -> None:
        while (item := chunks.get()) is not None:
            self._digest.update(memoryview(item[0]).cast("B"))
            if item[1] is not None:
                item[1].release()

    def _write(self, chunks: queue.Queue[_Item | None], out: BinaryIO) -> None:
        try:
            while (item := chunks.get()) is not None:
                chunk, slot = item
                try:
                    out.write(memoryview(chunk).cast("B"))
                    if self._tee is not None:
                        self._tee(chunk.tobytes())
                finally:
                    if slot is not None:
                        slot.release()
        except BaseException as exc:  # handed to finish()
            self._write_error = exc
            while (item := chunks.get()) is not None:  # drain so the reader never blocks
                if item[1] is not None:
                    item[1].release()

    def _slot(self, limit: int) -> _Slot:
        """A free buffer; a new one while fewer than ``limit`` exist (so no wait can last forever)."""
        try:
            return self._free.get_nowait()
        except queue.Empty:
            if self._slots < limit:
                self._slots += 1
                return _Slot(self._slot_bytes, self._free)
            return self._free.get()

    def _decode(self, header: SliceHeader, slot: _Slot) -> _Item:
        """One slice as written, in ``slot`` when it can be read there (else ``slot`` is freed)."""
        try:
            chunk = read_element_into(header, self._element_type, slot.buffer)
        except Exception:  # the general route below raises what it always raised, if anything
            chunk = None
        if chunk is not None:
            return chunk, slot
        self._free.put(slot)
        return slice_bytes(header, self._element_type), None

    def _run(self) -> None:
        to_hash: queue.Queue[_Item | None] = queue.Queue(maxsize=_QUEUED)
        to_write: queue.Queue[_Item | None] = queue.Queue(maxsize=_QUEUED)
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

    def _read_all(self, to_hash: queue.Queue[_Item | None], to_write: queue.Queue[_Item | None]) -> None:
        pending: deque[Future[_Item]] = deque()
        upcoming = iter(self._slices)
        window = 2 * self._decoders + 2
        # More buffers than the window: a slot is only ever waited for while some are queued for
        # (or in) the hash and write threads, which free them without waiting for this thread.
        limit = window + 2 * _QUEUED + 2
        with ThreadPoolExecutor(self._decoders, thread_name_prefix="raw-read") as pool:
            try:
                while True:
                    while len(pending) < window and not self._stop.is_set():
                        header = next(upcoming, None)
                        if header is None:
                            break
                        pending.append(pool.submit(self._decode, header, self._slot(limit)))
                    if not pending:
                        return
                    item = pending.popleft().result()
                    if self._write_error is None:
                        if item[1] is not None:
                            item[1].hand_out(2)
                        to_hash.put(item)
                        to_write.put(item)
                    elif item[1] is not None:
                        self._free.put(item[1])
            finally:
                for future in pending:
                    future.cancel()
