"""The data path end to end: DICOM in MinIO → cached volumes → a real CIRCUS CS plug-in with no
network → outputs, results and log in MinIO, compared with the same plug-in run locally."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_kubecircus
from e2ekit import INPUTS
from phantom import AXIAL, BLOBS_0, BLOBS_1, OBLIQUE, phantom, write_ct
from storetest import upload_folder

ROOT = Path(__file__).resolve().parents[2]
LESION_IMAGE = "localhost/kubecircus/lesion-candidates:dev"


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> Path:
    """Two CT phantoms with known lesions, as DICOM folders 0/ and 1/."""
    base = tmp_path_factory.mktemp("phantoms")
    for volume_id, (spec, blobs) in enumerate([(OBLIQUE, BLOBS_0), (AXIAL, BLOBS_1)]):
        values, _ = phantom(spec, blobs, lung=volume_id == 0)
        write_ct(spec, values, base / str(volume_id))
    return base


@pytest.fixture
def lesion_plugin(register_plugin) -> str:
    return register_plugin(
        "lesion-candidates",
        image=LESION_IMAGE,
        version="1.0.0",
        description="Bright blobs inside the body",
        display="LesionCandidates",
        timeoutSeconds=300,
        resources={"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        resultsSchema={"type": "object", "required": ["results"]},
    )


def _local_run(phantoms: Path, tmp: Path) -> tuple[Path, str]:
    """``kubecircus convert`` + the plug-in's own code, on this machine."""
    root = tmp / "circus"
    (root / "out").mkdir(parents=True)
    for volume_id in (0, 1):
        done = run_kubecircus("convert", phantoms / str(volume_id), root / "in", "--volume-id", volume_id)
        assert done.returncode == 0, done.stderr
    plugin = ROOT / "plugins" / "lesion-candidates" / "plugin.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_")}
    done = subprocess.run(
        [sys.executable, str(plugin)],
        env={**env, "CIRCUS_DIR": str(root)},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout
    return root, done.stdout.replace(str(root), "/circus")


def _get(store, key: str) -> bytes:
    return store.get_object(bucket_name="kubecircus", object_name=key).read()


def test_lesion_candidates_on_two_inputs_matches_a_local_run(
    jobs, ns, store, phantoms, lesion_plugin, tmp_path
):
    for volume_id in (0, 1):
        upload_folder(store, phantoms / str(volume_id), INPUTS, f"{ns}/ct{volume_id}/")
    inputs = [{"source": {"bucket": INPUTS, "prefix": f"{ns}/ct{i}/"}} for i in (0, 1)]
    jobs.create("lesions", lesion_plugin, inputs=inputs)
    status = jobs.wait("lesions", {"Succeeded", "Failed"}, timeout=300)
    assert status["phase"] == "Succeeded", status
    local, local_log = _local_run(phantoms, tmp_path)

    # the volumes the plug-in saw are what a local conversion writes
    assert [(i["id"], i["cacheHit"]) for i in status["inputs"]] == [(0, False), (1, False)]
    for item in status["inputs"]:
        header = (local / "in" / f"{item['id']}.mhd").read_text()
        size = re.search(r"DimSize = (.*)", header).group(1).split()
        assert item["size"] == [int(v) for v in size]
    # results, outputs, log and manifest in the store match the local run
    outputs = status["outputs"]
    prefix = outputs["prefix"]
    stored = json.loads(_get(store, prefix + "out/results.json"))
    assert stored == json.loads((local / "out" / "results.json").read_text())
    assert status["outputs"]["results"] == stored  # small enough to be inline too
    assert stored["results"]["lesionCandidates"], "the phantoms' lesions were found"
    import numpy as np
    import SimpleITK as sitk

    preview = tmp_path / "preview.png"
    preview.write_bytes(_get(store, prefix + "out/preview.png"))
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(sitk.ReadImage(str(preview))),
        sitk.GetArrayFromImage(sitk.ReadImage(str(local / "out" / "preview.png"))),
    )
    assert _get(store, status["logRef"]["key"]).decode() == local_log
    manifest = json.loads(_get(store, outputs["manifest"]))
    assert sorted(o["name"] for o in manifest["outputs"]) == ["preview.png", "results.json"]
    assert {o["name"]: o["contentType"] for o in manifest["outputs"]}["preview.png"] == "image/png"
    assert manifest["plugin"]["imageID"] == status["pluginImageID"] and "sha256:" in status["pluginImageID"]
    assert [i["fingerprint"] for i in manifest["inputs"]] == [i["fingerprint"] for i in status["inputs"]]
    assert manifest["exitCode"] == 0 and manifest["job"]["uid"] == jobs.get("lesions")["metadata"]["uid"]

    # the same series again: from the cache, no conversion
    jobs.create("again", lesion_plugin, inputs=inputs)
    again = jobs.wait("again", {"Succeeded", "Failed"}, timeout=300)
    assert again["phase"] == "Succeeded", again
    assert [i["cacheHit"] for i in again["inputs"]] == [True, True]
    assert [i["fingerprint"] for i in again["inputs"]] == [i["fingerprint"] for i in status["inputs"]]


def test_a_series_the_converter_refuses_fails_at_staging_with_its_message(
    jobs, ns, store, make_plugin, tmp_path
):
    from dicomfactory import SeriesSpec, write_series

    paths = write_series(SeriesSpec(rows=16, columns=16, slices=5), tmp_path / "gap")
    paths[2].unlink()  # a missing slice: a gap in the volume
    upload_folder(store, tmp_path / "gap", INPUTS, f"{ns}/gap/")
    plugin = make_plugin("echo ran; echo '{}' > /circus/out/results.json")
    jobs.create("gap", plugin, inputs=[{"source": {"bucket": INPUTS, "prefix": f"{ns}/gap/"}}])
    status = jobs.wait("gap", {"Succeeded", "Failed"})
    assert (status["phase"], status["reason"]) == ("Failed", "InputInvalid"), status
    assert f"s3://dicom/{ns}/gap/" in status["message"] and "gap" in status["message"].lower()
    assert [c["type"] for c in status["conditions"]] == ["Queued", "Staging", "Failed"]
    assert status.get("exitCode") is None  # the plug-in never ran


def test_an_input_of_another_namespace_is_forbidden_at_once(jobs, make_plugin):
    plugin = make_plugin("echo '{}' > /circus/out/results.json")
    jobs.create("nosy", plugin, inputs=[{"source": {"bucket": INPUTS, "prefix": "kube-system/secrets/"}}])
    status = jobs.wait("nosy", {"Succeeded", "Failed"}, timeout=60)
    assert (status["phase"], status["reason"]) == ("Failed", "InputForbidden")
    assert "read only keys under" in status["message"] and "Staging" not in [
        c["type"] for c in status["conditions"]
    ]
