"""Running the header scan in worker processes: how many, when, and how failures come back.

Parsing DICOM headers with pydicom is pure Python and holds the GIL, so threads cannot share it
out; processes can. Workers are forked (``concurrent.futures.ProcessPoolExecutor`` with the
``fork`` context): a forked worker starts in milliseconds with pydicom and numpy already
imported, where a spawned one would spend a quarter of a second importing them again. Forking
a process that runs threads can deadlock a child, so a process that runs any other thread reads
serially instead.

The calling process works too: it takes chunks from the end of the list while the workers take
them from the front (a chunk no worker has started can be cancelled and read here), so on two
cores one worker is forked, and the parent's own results need no pickling.

Errors: a chunk whose worker raised (or died, or whose results could not be pickled) is read
again in the calling process, in order, so the error raised is exactly the one the serial scan
raises, for the same file, with the same message and class. If no worker can be started at all
(fork refused), every chunk is read here.

Settings: ``KUBECIRCUS_CONVERTER_WORKERS`` = number of processes (this one included) reading
headers; ``1`` forces the serial scan. Default: the CPUs this process may use, bounded by the
cgroup CPU quota (a container's CPU limit).
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future

# multiprocessing and concurrent.futures.process are imported where a pool is started: a small
# series, converted serially, should not pay for them.

log = logging.getLogger(__name__)

WORKERS_ENV = "KUBECIRCUS_CONVERTER_WORKERS"
#: Below this many files the scan stays serial: forking and collecting cost about as much as
#: parsing this many headers (measured: docs/converter.md).
MIN_PARALLEL_FILES = 64
#: Whether the calling process reads chunks too (see the module docstring); tests turn it off to
#: send every chunk through a worker.
PARENT_HELPS = True
_CGROUP = Path("/sys/fs/cgroup")

T = TypeVar("T")
R = TypeVar("R")


def _quota(root: Path = _CGROUP) -> float | None:
    """CPUs allowed by the cgroup quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), None if unlimited."""
    try:
        text = (root / "cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def cpu_budget(root: Path = _CGROUP) -> int:
    """CPUs this process may run on, bounded by the container's CPU quota (rounded up)."""
    count = getattr(os, "process_cpu_count", None)
    if count is not None:
        cpus = count() or 1
    elif hasattr(os, "sched_getaffinity"):
        cpus = len(os.sched_getaffinity(0)) or 1
    else:
        cpus = os.cpu_count() or 1
    quota = _quota(root)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return cpus


def configured_workers() -> int:
    """``KUBECIRCUS_CONVERTER_WORKERS`` if set to a positive integer, else :func:`cpu_budget`."""
    text = os.environ.get(WORKERS_ENV, "").strip()
    if text:
        try:
            value = int(text)
            if value >= 1:
                return value
        except ValueError:
            pass
        log.warning("ignoring %s=%r: not a positive integer", WORKERS_ENV, text)
    return cpu_budget()


def can_fork() -> bool:
    """Forking is safe only while this process runs no other thread."""
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def plan_workers(files: int) -> int:
    """Processes (this one included) to read ``files`` headers with; 1 means serially here."""
    if files < MIN_PARALLEL_FILES or not can_fork():
        return 1
    return max(1, min(configured_workers(), files // (MIN_PARALLEL_FILES // 2)))


def map_chunks(
    fn: Callable[[T, R], list[object]],
    chunks: Sequence[T],
    workers: int,
    arg: R,
    local: Callable[[T, R], list[object]] | None = None,
) -> Iterator[list[object]]:
    """``fn(chunk, arg)`` for every chunk, yielded in order; ``workers - 1`` forked processes help.

    ``fn`` must be a module-level function (it is sent by name) and its results picklable.
    ``local`` (default ``fn``): what this process runs instead, for the chunks it reads itself;
    it must give the same results and raise the same errors, only without pickling in mind.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    here = local or fn
    context = multiprocessing.get_context("fork")
    done: dict[int, list[object] | BaseException] = {}
    pool = ProcessPoolExecutor(max_workers=workers - 1, mp_context=context)
    try:
        try:
            futures: list[Future[list[object]]] = [pool.submit(fn, chunk, arg) for chunk in chunks]
        except OSError as exc:  # fork refused (process or memory limits): read everything here
            log.warning("cannot start header workers (%s); reading the headers in one process", exc)
            for chunk in chunks:
                yield here(chunk, arg)
            return
        helped = range(len(chunks)) if PARENT_HELPS else range(0)
        for index in reversed(helped):  # from the back, while no worker has got there
            if not futures[index].cancel():
                break
            try:
                done[index] = here(chunks[index], arg)
            except Exception as exc:  # raised below, in order
                done[index] = exc
                break
        for index, future in enumerate(futures):
            outcome = done.pop(index, None)
            if outcome is None:
                try:
                    outcome = future.result()
                except Exception as exc:  # read it again here: the serial error, raised here
                    log.debug("worker failed on chunk %d (%s); reading it here", index, exc)
                    outcome = here(chunks[index], arg)
            if isinstance(outcome, BaseException):
                raise outcome
            yield outcome
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
