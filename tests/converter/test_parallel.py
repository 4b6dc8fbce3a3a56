"""The parallel paths (worker processes for headers, threads for pixels) change nothing but speed.

Same bytes as the serial scan, the same refusals with the same messages, no workers for small
series, and the worker count bounded by the CPUs, the container's quota and the setting.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kubecircus.converter import (
    ConversionError,
    convert,
    parallel,
    plan_conversion,
    plan_from_headers,
    scan,
    write_volume,
)

from dicomfactory import SeriesSpec, fill_identifying, make_slices, save, write_series


@pytest.fixture
def forced(monkeypatch):
    """Every scan of two or more files goes to worker processes, one file per task."""
    assert threading.active_count() == 1, (
        f"{threading.enumerate()}: the converter forks only from a process without other threads; "
        "tests/conftest.py runs this module first"
    )
    monkeypatch.setattr(parallel, "MIN_PARALLEL_FILES", 2)
    monkeypatch.setattr(parallel, "PARENT_HELPS", False)
    monkeypatch.setattr(scan, "_CHUNK_FILES", (1, 64))
    monkeypatch.setenv(parallel.WORKERS_ENV, "3")
    return monkeypatch


def _outputs(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def _rich_series(folder: Path) -> None:
    """Identifying tags, sequences, private tags, SpacingBetweenSlices, shuffled names, a stray file."""
    datasets = make_slices(
        SeriesSpec(slices=12, signed=False, bits_stored=12, value_range=(0, 4095), slope=1, intercept=-1024)
    )
    for ds in datasets:
        fill_identifying(ds)
        block = ds.private_block(0x0019, "ACME 1.0", create=True)
        block.add_new(0x10, "LO", "kernel B30f")
        ds.SpacingBetweenSlices = 2.5
    names = [f"{n:03d}.dcm" for n in (7, 3, 11, 0, 5, 9, 1, 10, 2, 8, 4, 6)]
    save(datasets, folder, names)
    (folder / "notes.txt").write_text("not an image")


def _two_series(folder: Path) -> None:
    write_series(SeriesSpec(slices=6, series_uid="1.2.3.4"), folder / "a")
    write_series(SeriesSpec(slices=4, rows=16), folder / "b")


CASES = {
    "rich": (_rich_series, {"keep_private": {0x00191010}}),
    "rich-range": (_rich_series, {"slice_range": "10:3:-1"}),
    "two-series": (_two_series, {"series_uid": "1.2.3.4"}),
    "float-rescale": (lambda f: write_series(SeriesSpec(slices=9, slope=0.5, intercept=-3.25), f), {}),
}


@pytest.mark.parametrize("case", CASES)
def test_parallel_output_is_byte_identical_to_serial(tmp_path, monkeypatch, forced, case):
    make, options = CASES[case]
    make(tmp_path / "in")
    monkeypatch.setenv(parallel.WORKERS_ENV, "1")
    convert(tmp_path / "in", tmp_path / "serial", **options)
    monkeypatch.setenv(parallel.WORKERS_ENV, "3")
    plan = plan_conversion(tmp_path / "in", **{k: v for k, v in options.items()})
    assert all(s.dataset is None for s in plan.slices), "every header should come from a worker"
    write_volume(plan, tmp_path / "parallel")
    assert _outputs(tmp_path / "parallel") == _outputs(tmp_path / "serial")


def test_parent_helping_gives_the_same_bytes(tmp_path, monkeypatch, forced):
    _rich_series(tmp_path / "in")
    monkeypatch.setattr(parallel, "PARENT_HELPS", True)
    convert(tmp_path / "in", tmp_path / "parallel")
    monkeypatch.setenv(parallel.WORKERS_ENV, "1")
    convert(tmp_path / "in", tmp_path / "serial")
    assert _outputs(tmp_path / "parallel") == _outputs(tmp_path / "serial")


def _truncated(folder: Path) -> None:
    paths = write_series(SeriesSpec(slices=8), folder)
    paths[5].write_bytes(paths[5].read_bytes()[:-300])


def _no_rows(folder: Path) -> None:
    datasets = make_slices(SeriesSpec(slices=8))
    del datasets[6].Rows
    save(datasets, folder)


def _damaged_header(folder: Path) -> None:
    paths = write_series(SeriesSpec(slices=8), folder)
    data = bytearray(paths[4].read_bytes())
    data[140:148] = b"\xff" * 8  # a meta element's length now runs past the file
    paths[4].write_bytes(bytes(data))


def _two_bad_files(folder: Path) -> None:
    """The first bad file in scan order is the one reported, whichever process meets it first."""
    paths = write_series(SeriesSpec(slices=8), folder)
    for index in (2, 7):
        paths[index].write_bytes(paths[index].read_bytes()[:-300])


@pytest.mark.parametrize("make", [_truncated, _no_rows, _damaged_header, _two_bad_files])
def test_errors_in_workers_are_the_serial_errors(tmp_path, monkeypatch, forced, make):
    make(tmp_path / "in")
    monkeypatch.setenv(parallel.WORKERS_ENV, "1")
    with pytest.raises(ConversionError) as serial:
        convert(tmp_path / "in", tmp_path / "serial")
    monkeypatch.setenv(parallel.WORKERS_ENV, "3")
    with pytest.raises(ConversionError) as worker:
        convert(tmp_path / "in", tmp_path / "parallel")
    assert type(worker.value) is type(serial.value)
    assert str(worker.value) == str(serial.value)
    assert (worker.value.problem, worker.value.hint) == (serial.value.problem, serial.value.hint)
    assert not list((tmp_path / "parallel").glob("0.*"))


def _fails_in_workers(chunk: list[int], parent: int) -> list[object]:
    import os

    if os.getpid() != parent:
        raise RuntimeError("worker trouble")
    return [n * 2 for n in chunk]


class _Unpicklable(Exception):
    def __init__(self, a: int, b: int) -> None:  # pickle cannot rebuild it from args
        super().__init__(f"bad chunk {a}")
        self.b = b


def _unpicklable_error(chunk: list[int], _: object) -> list[object]:
    if 5 in chunk:
        raise _Unpicklable(5, 1)
    return list(chunk)


def test_a_chunk_a_worker_failed_on_is_read_again_here(monkeypatch):
    import os

    monkeypatch.setattr(parallel, "PARENT_HELPS", False)
    chunks = [[1, 2], [3], [4, 5]]
    assert list(parallel.map_chunks(_fails_in_workers, chunks, 3, os.getpid())) == [[2, 4], [6], [8, 10]]
    with pytest.raises(_Unpicklable, match="bad chunk 5"):
        list(parallel.map_chunks(_unpicklable_error, [[1], [2, 3], [5], [6]], 3, None))


def test_small_series_start_no_workers(tmp_path, monkeypatch):
    def no_pool(*args, **kwargs):
        raise AssertionError("a process pool was started for a small series")

    monkeypatch.setattr(scan, "map_chunks", no_pool)
    monkeypatch.setenv(parallel.WORKERS_ENV, "4")
    write_series(SeriesSpec(slices=10), tmp_path / "in")
    convert(tmp_path / "in", tmp_path / "out")
    assert parallel.plan_workers(parallel.MIN_PARALLEL_FILES - 1) == 1
    assert parallel.plan_workers(parallel.MIN_PARALLEL_FILES) == 2  # at least 32 files a process
    assert parallel.plan_workers(10_000) == 4


def test_a_threaded_caller_scans_serially(monkeypatch):
    monkeypatch.setenv(parallel.WORKERS_ENV, "4")
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert parallel.plan_workers(10_000) == 1  # forking next to a running thread can deadlock
    finally:
        release.set()
        other.join()


def test_worker_setting(monkeypatch, caplog):
    monkeypatch.setenv(parallel.WORKERS_ENV, "1")
    assert parallel.configured_workers() == 1
    monkeypatch.setenv(parallel.WORKERS_ENV, "many")
    assert parallel.configured_workers() == parallel.cpu_budget()
    assert "ignoring KUBECIRCUS_CONVERTER_WORKERS='many'" in caplog.text


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "150000 100000\n"}, 2),
        ({"cpu.max": "50000 100000\n"}, 1),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_cpu_budget_honours_the_cgroup_quota(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    unbounded = parallel.cpu_budget(tmp_path / "absent")
    assert parallel.cpu_budget(tmp_path) == (unbounded if expected is None else min(unbounded, expected))


def test_a_failing_tee_fails_the_volume(tmp_path):
    write_series(SeriesSpec(slices=6), tmp_path / "in")
    seen: list[bytes] = []

    def tee(chunk: bytes) -> None:
        seen.append(chunk)
        if len(seen) == 2:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_volume(plan_conversion(tmp_path / "in"), tmp_path / "out", tee=tee)
    assert not list((tmp_path / "out").glob("0.*"))


def test_tee_gets_exactly_the_raw_bytes(tmp_path):
    write_series(SeriesSpec(slices=7, slope=2, intercept=-5), tmp_path / "in")
    chunks: list[bytes] = []
    result = write_volume(plan_conversion(tmp_path / "in"), tmp_path / "out", tee=chunks.append)
    assert all(isinstance(c, bytes) for c in chunks) and len(chunks) == 7
    assert b"".join(chunks) == result.raw.read_bytes()


@pytest.mark.parametrize("decoders", [1, 2])
def test_reused_slice_buffers_give_each_slice_its_own_bytes(tmp_path, decoders):
    """More slices than the stream has buffers: each buffer is reused only once written and hashed."""
    import hashlib

    from kubecircus.converter.raw import RawStream, slice_bytes

    write_series(SeriesSpec(slices=60, signed=False, value_range=(0, 4095), intercept=-1024), tmp_path / "in")
    plan = plan_conversion(tmp_path / "in")
    chunks: list[bytes] = []
    stream = RawStream(plan.slices, "MET_SHORT", tmp_path / "0.raw", chunks.append, decoders).start()
    digest = stream.finish()
    expected = b"".join(slice_bytes(s, "MET_SHORT").tobytes() for s in plan.slices)
    assert (tmp_path / "0.raw").read_bytes() == expected == b"".join(chunks)
    assert digest == hashlib.sha256(expected).hexdigest()


def test_the_first_unreadable_slice_in_volume_order_is_reported(tmp_path):
    """Slices are read ahead by several threads; the refusal is still the first bad one written."""
    datasets = make_slices(SeriesSpec(slices=9))
    for index in (1, 3, 6):  # instance numbers 2, 4 and 7; written from the top: 9, 8, 7, ...
        datasets[index].PixelData = datasets[index].PixelData[:100]
    save(datasets, tmp_path / "in")
    with pytest.raises(ConversionError, match=r"image 7 \(IM0006.dcm\) holds 100 bytes of pixel data"):
        convert(tmp_path / "in", tmp_path / "out")
    assert not list((tmp_path / "out").glob("0.*"))


@pytest.mark.parametrize("keep_private", [frozenset(), frozenset({0x00191010})])
def test_headers_parsed_here_and_in_workers_mix_in_one_dump(tmp_path, keep_private):
    """Headers read here decode their values lazily, from the dataset they keep; a worker's come
    decoded. A volume made of both has the bytes of one made of either."""
    _rich_series(tmp_path / "in")
    paths = sorted((tmp_path / "in").glob("*.dcm"))
    here = [h for h in (scan.read_header(p, keep_private) for p in paths)]
    travelled = scan._read_chunk(paths, keep_private)
    mixed = [a if i % 3 else b for i, (a, b) in enumerate(zip(here, travelled, strict=True))]
    assert {h.dataset is None for h in mixed} == {True, False}
    outputs = []
    for n, headers in enumerate([here, travelled, mixed]):
        write_volume(plan_from_headers(headers, keep_private=keep_private), tmp_path / str(n))
        outputs.append(_outputs(tmp_path / str(n)))
    assert outputs[0] == outputs[1] == outputs[2]


def test_a_refused_fork_reads_serially(tmp_path, monkeypatch, forced, caplog):
    import concurrent.futures

    class Refusing(concurrent.futures.ProcessPoolExecutor):
        def submit(self, *args, **kwargs):
            raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Refusing)
    _rich_series(tmp_path / "in")
    convert(tmp_path / "in", tmp_path / "parallel")
    assert "cannot start header workers" in caplog.text
    monkeypatch.setenv(parallel.WORKERS_ENV, "1")
    convert(tmp_path / "in", tmp_path / "serial")
    assert _outputs(tmp_path / "parallel") == _outputs(tmp_path / "serial")
