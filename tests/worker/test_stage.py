"""stage against a real MinIO with the credentials the operator would mint for it."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from kubecircus.converter import convert
from kubecircus.objectstore.client import unavailable
from kubecircus.objectstore.policy import stage_policy
from kubecircus.worker import stage
from kubecircus.worker.workspace import manifest_problems, read_manifest

from dicomfactory import SeriesSpec, make_slices, save, write_series
from storetest import BUCKET, INPUTS, upload_folder

NS = "team-s"


def _task(*inputs: dict, **limits) -> dict:
    return {"namespace": NS, "attempt": 2, "inputs": list(inputs), "limits": limits}


def _stage(mint, tmp_path: Path, *inputs: dict, **limits):
    client = mint(stage_policy(NS, [(i["bucket"], i["prefix"]) for i in inputs], BUCKET))
    ws = tmp_path / f"ws-{time.monotonic_ns()}"
    ws.mkdir()
    report = stage.run(_task(*inputs, **limits), client, BUCKET, ws, tmp_path / "scratch")
    return report, ws


@pytest.fixture(scope="module")
def series(tmp_path_factory, root):
    """Two CT series uploaded under team-s/ (the second in two subfolders with a range)."""
    base = tmp_path_factory.mktemp("series")
    specs = {
        "ct": SeriesSpec(rows=32, columns=40, slices=12),
        "mr": SeriesSpec(rows=24, columns=24, slices=6, seed=3),
    }
    for name, spec in specs.items():
        write_series(spec, base / name)
    upload_folder(root, base / "ct", INPUTS, f"{NS}/ct/")
    upload_folder(root, base / "mr", INPUTS, f"{NS}/mr/")
    return base


def test_two_inputs_are_staged_exactly_as_a_local_conversion_and_cached(
    mint, root, tmp_path, series, monkeypatch
):
    inputs = [
        {"bucket": INPUTS, "prefix": f"{NS}/ct/"},
        {"bucket": INPUTS, "prefix": f"{NS}/mr/", "range": "2:5:1"},
    ]
    report, ws = _stage(mint, tmp_path, *inputs)
    assert report.ok, report
    local = tmp_path / "local"
    convert(series / "ct", local, volume_id=0)
    convert(series / "mr", local, volume_id=1, slice_range="2:5:1")
    for name in ("0.mhd", "0.raw", "0.json", "1.mhd", "1.raw", "1.json"):
        assert (ws / "in" / name).read_bytes() == (local / name).read_bytes(), name
    assert sorted(p.name for p in (ws / "in").iterdir()) == [
        "0.json",
        "0.mhd",
        "0.raw",
        "1.json",
        "1.mhd",
        "1.raw",
    ]
    assert (ws / "out").is_dir() and not any((ws / "out").iterdir())
    manifest = read_manifest(ws)
    assert manifest_problems(ws, manifest) == []
    assert manifest["attempt"] == 2  # what an early plug-in pod waits for
    details = report.details["inputs"]
    assert [d["cacheHit"] for d in details] == [False, False]
    assert details[0]["size"] == [40, 32, 12] and details[1]["size"] == [24, 24, 4]
    key = details[0]["fingerprint"]
    marker = json.loads(root.get_object(bucket_name=BUCKET, object_name=f"cache/{NS}/{key}/complete").read())
    assert marker["files"]["volume.raw"]["size"] == (local / "0.raw").stat().st_size

    # the same inputs again: served from the cache without downloading or converting anything
    monkeypatch.setattr(stage.converter, "write_volume", lambda *a, **k: pytest.fail("converted again"))
    monkeypatch.setattr(stage.Stager, "_download", lambda *a, **k: pytest.fail("downloaded DICOM again"))
    again, ws2 = _stage(mint, tmp_path, *inputs)
    assert again.ok and [d["cacheHit"] for d in again.details["inputs"]] == [True, True]
    for name in ("0.mhd", "0.raw", "0.json", "1.mhd", "1.raw", "1.json"):
        assert (ws2 / "in" / name).read_bytes() == (local / name).read_bytes(), name


def test_a_copy_under_another_prefix_hits_by_content(mint, root, tmp_path, series, monkeypatch):
    upload_folder(root, series / "ct", INPUTS, f"{NS}/copy/")
    (series / "notes.txt").write_text("not DICOM")  # an extra object changes the listing, not the content
    root.fput_object(
        bucket_name=INPUTS, object_name=f"{NS}/copy/notes.txt", file_path=str(series / "notes.txt")
    )
    first, _ = _stage(mint, tmp_path, {"bucket": INPUTS, "prefix": f"{NS}/ct/"})
    monkeypatch.setattr(stage.converter, "write_volume", lambda *a, **k: pytest.fail("converted again"))
    report, ws = _stage(mint, tmp_path, {"bucket": INPUTS, "prefix": f"{NS}/copy/"})
    assert report.ok and report.details["inputs"][0]["cacheHit"]
    assert (ws / "in" / "0.raw").stat().st_size == 40 * 32 * 12 * 2
    assert report.details["inputs"][0]["fingerprint"] == first.details["inputs"][0]["fingerprint"]


def test_crafted_files_reusing_a_series_uids_cannot_poison_its_cache_entry(mint, root, tmp_path, series):
    original, _ = _stage(mint, tmp_path, {"bucket": INPUTS, "prefix": f"{NS}/ct/"})
    forged = tmp_path / "forged"
    shutil.copytree(series / "ct", forged)
    import pydicom

    for path in forged.iterdir():  # same SOP, series and study UIDs; other pixels
        ds = pydicom.dcmread(path)
        ds.PixelData = bytes(len(ds.PixelData))
        ds.save_as(path)
    upload_folder(root, forged, INPUTS, f"{NS}/forged/")
    report, ws = _stage(mint, tmp_path, {"bucket": INPUTS, "prefix": f"{NS}/forged/"})
    assert report.ok and not report.details["inputs"][0]["cacheHit"]
    assert report.details["inputs"][0]["fingerprint"] != original.details["inputs"][0]["fingerprint"]
    assert not any((ws / "in" / "0.raw").read_bytes())  # its own zeros, not the cached original
    again, ws2 = _stage(mint, tmp_path, {"bucket": INPUTS, "prefix": f"{NS}/ct/"})
    assert again.details["inputs"][0]["cacheHit"] and any((ws2 / "in" / "0.raw").read_bytes())


def test_a_damaged_series_fails_with_the_converters_message(mint, root, tmp_path):
    slices = make_slices(SeriesSpec(rows=16, columns=16, slices=4))
    folder = tmp_path / "bad"
    paths = save(slices, folder)
    paths[2].write_bytes(paths[2].read_bytes()[:-100])
    upload_folder(root, folder, INPUTS, f"{NS}/bad/")
    report, ws = _stage(mint, tmp_path, {"bucket": INPUTS, "prefix": f"{NS}/bad/"})
    assert report.reason == "InputInvalid" and not (ws / "manifest.json").exists()
    assert f"s3://{INPUTS}/{NS}/bad/" in report.message and "IM0002.dcm is truncated" in report.message
    assert "re-send the series" in report.message


@pytest.mark.parametrize(
    ("prefix", "limits", "words"),
    [
        (f"{NS}/nothing-here/", {}, "no objects under"),
        (f"{NS}/ct/", {"max_object_bytes": 100}, "above the 100 accepted for one DICOM file"),
        (f"{NS}/ct/", {"max_objects": 3}, "more than the 3 accepted"),
        (f"{NS}/ct/", {"max_input_bytes": 1000}, "above the 1000 accepted"),
    ],
)
def test_inputs_beyond_the_limits_are_refused_before_download(mint, tmp_path, series, prefix, limits, words):
    report, _ = _stage(mint, tmp_path, {"bucket": INPUTS, "prefix": prefix}, **limits)
    assert report.reason == "InputInvalid" and words in report.message


def test_objects_that_are_not_dicom_are_refused_with_a_hint(mint, root, tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.txt").write_text("hello")
    upload_folder(root, tmp_path / "junk", INPUTS, f"{NS}/junk/")
    report, _ = _stage(mint, tmp_path, {"bucket": INPUTS, "prefix": f"{NS}/junk/"})
    assert report.reason == "InputInvalid" and "no readable DICOM image" in report.message


# --- the object store going away --------------------------------------------------------------


@pytest.fixture
def outage_store(tmp_path):
    """A MinIO of its own, set up like the bundled one, that the test may stop and start."""
    from kubecircus.objectstore import admin, sts
    from kubecircus.objectstore.client import Credentials, StoreConfig, connect

    from miniotest import ROOT_PASSWORD, ROOT_USER, MinioServer
    from storetest import OPERATOR

    server = MinioServer(tmp_path / "outage-data")
    server.start()
    config = StoreConfig(endpoint=server.endpoint, bucket=BUCKET)
    root_creds = Credentials(ROOT_USER, ROOT_PASSWORD)
    admin.setup(config, root_creds, OPERATOR, [INPUTS], wait=30)
    write_series(SeriesSpec(rows=16, columns=16, slices=5), tmp_path / "s")
    upload_folder(connect(config, root_creds), tmp_path / "s", INPUTS, f"{NS}/s/")
    minted = sts.mint(config, OPERATOR, stage_policy(NS, [(INPUTS, f"{NS}/s/")], BUCKET), 900, "t")
    client = connect(
        config, Credentials(minted.access_key, minted.secret_key, minted.session_token), timeout=2
    )
    yield server, client
    server.stop()


def test_an_outage_longer_than_the_budget_is_unavailable_never_a_job_fault(outage_store, tmp_path):
    server, client = outage_store
    server.stop()
    (tmp_path / "w").mkdir()
    with pytest.raises(Exception) as caught:
        stage.run(
            _task({"bucket": INPUTS, "prefix": f"{NS}/s/"}, retry_seconds=2),
            client,
            BUCKET,
            tmp_path / "w",
            tmp_path,
        )
    assert unavailable(caught.value), caught.value


def test_staging_rides_out_a_short_outage(outage_store, tmp_path):
    server, client = outage_store
    server.stop()
    threading.Timer(3, server.start).start()
    (tmp_path / "w").mkdir()
    report = stage.run(
        _task({"bucket": INPUTS, "prefix": f"{NS}/s/"}, retry_seconds=60),
        client,
        BUCKET,
        tmp_path / "w",
        tmp_path,
    )
    assert report.ok, report
    assert (tmp_path / "w" / "in" / "0.raw").stat().st_size == 16 * 16 * 5 * 2


def test_an_input_outside_the_namespace_is_refused_by_the_step_itself(mint, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    task = {"namespace": NS, "inputs": [{"bucket": INPUTS, "prefix": "someone-else/s1/"}]}
    report = stage.run(task, mint(stage_policy(NS, [(INPUTS, f"{NS}/ct/")], BUCKET)), BUCKET, ws, tmp_path)
    assert report.reason == "InputForbidden" and "outside the namespace" in report.message


def test_an_object_overwritten_while_it_is_staged_is_not_mixed_in(mint, root, tmp_path, monkeypatch):
    """Downloads pin the listed version (If-Match): content never differs from its cache key."""
    write_series(SeriesSpec(rows=16, columns=16, slices=3), tmp_path / "moving")
    keys = upload_folder(root, tmp_path / "moving", INPUTS, f"{NS}/moving/")
    listed = stage.Stager._list

    def list_then_overwrite(self, item):
        objects = listed(self, item)
        root.fput_object(
            bucket_name=INPUTS, object_name=keys[1], file_path=str(tmp_path / "moving" / "IM0000.dcm")
        )
        return objects

    monkeypatch.setattr(stage.Stager, "_list", list_then_overwrite)
    report, _ = _stage(mint, tmp_path, {"bucket": INPUTS, "prefix": f"{NS}/moving/"})
    assert report.reason == "InputInvalid" and "changed while the series was being staged" in report.message
