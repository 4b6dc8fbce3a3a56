"""Malformed inputs through staging: truncated files, garbage, headers with flipped bytes, a
zero-byte file and an object too large to be one DICOM file. No operator or worker crash; each
job fails ``InputInvalid`` with the converter's (or the stager's) message, within its deadline,
in one attempt, and leaves no pod behind."""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path

import pytest

from dicomfactory import SeriesSpec, write_series
from e2ekit import INPUTS, operator_pod
from storetest import upload_folder

FINISHED = {"Succeeded", "Failed", "Cancelled"}
BIG = 2 * 1024**3  # 2 GiB: past the 1 GiB one DICOM file may be (stage's Limits.max_object_bytes)


class Zeros(io.RawIOBase):
    """``size`` zero bytes, generated as read: a 2 GiB upload without a 2 GiB file."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


def _cases(root: Path) -> dict[str, tuple[Path | None, str]]:
    """case -> (folder to upload, or None for the big object; words the message must hold)."""
    good = root / "good"
    write_series(SeriesSpec(rows=16, columns=16, slices=6), good)
    truncated = root / "truncated"
    shutil.copytree(good, truncated)
    victim = sorted(truncated.iterdir())[2]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    garbage = root / "garbage"
    garbage.mkdir()
    for i in range(3):
        (garbage / f"IM{i:04d}.dcm").write_bytes(os.urandom(4096))
    flipped = root / "flipped"
    shutil.copytree(good, flipped)
    for path in flipped.iterdir():
        data = bytearray(path.read_bytes())
        for i in range(132, 600):  # the file meta and the first data elements
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))
    zero = root / "zero"
    zero.mkdir()
    (zero / "IM0000.dcm").write_bytes(b"")
    return {
        "truncated": (truncated, "slices are missing"),
        "garbage": (garbage, "no readable DICOM image"),
        "flipped": (flipped, "no readable DICOM image"),
        "zero": (zero, "no readable DICOM image"),
        "big": (None, "accepted for one DICOM file"),
    }


def test_malformed_inputs_fail_input_invalid_without_crashing_anything(
    core, jobs, make_plugin, store, tmp_path
):
    restarts_before = sum(s.restart_count for s in operator_pod(core).status.container_statuses)
    operator_before = operator_pod(core).metadata.name
    plugin = make_plugin("echo '{}' > /circus/out/results.json")
    cases = _cases(tmp_path)
    for case, (folder, _) in cases.items():
        prefix = f"{jobs.ns}/{case}/"
        if folder is None:
            store.put_object(
                bucket_name=INPUTS,
                object_name=prefix + "IM0000.dcm",
                data=Zeros(BIG),
                length=BIG,
                part_size=64 * 1024**2,
            )
        else:
            upload_folder(store, folder, INPUTS, prefix)
        jobs.create(case, plugin, inputs=[{"source": {"bucket": INPUTS, "prefix": prefix}}])
    try:
        for case, (_, words) in cases.items():
            status = jobs.wait(case, FINISHED, timeout=300)
            assert (status["phase"], status["reason"]) == ("Failed", "InputInvalid"), (case, status)
            assert words in status["message"], (case, status["message"])
            assert status.get("attempt", 0) == 0, (case, status)  # judged once, never retried
        deadline = time.monotonic() + 60
        while (left := core.list_namespaced_pod(jobs.ns).items) and time.monotonic() < deadline:
            time.sleep(1)
        assert not left, [p.metadata.name for p in left]  # no hung pod
    finally:
        store.remove_object(bucket_name=INPUTS, object_name=f"{jobs.ns}/big/IM0000.dcm")
    pod = operator_pod(core)
    assert pod.metadata.name == operator_before, "the operator pod was replaced"
    assert sum(s.restart_count for s in pod.status.container_statuses) == restarts_before


@pytest.fixture(autouse=True)
def _room_for_the_big_object():
    free = shutil.disk_usage("/").free
    if free < 4 * BIG:
        pytest.fail(f"{free / 1024**3:.0f} GiB free: the 2 GiB object needs room in the bundled store")
