"""The lesion-candidates plug-in, run as CIRCUS CS would run it, on synthetic CTs with known blobs.

Why: the plug-in is kubecircus's proof that a real CIRCUS CS image works; these tests pin its
contract without a cluster. A CT is made with tests/dicomfactory.py (its pixel data replaced by a
phantom: air, a body, a lung, a CT table and spheres of 300 HU), converted with `kubecircus
convert` into <tmp>/circus/in/N.*, and plugin.py runs with CIRCUS_DIR=<tmp>/circus. Expected
positions come from the DICOM geometry directly (not from SimpleITK or the converter), on an
oblique series so that a forgotten direction matrix would show.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_kubecircus
from phantom import AXIAL, BLOBS_0, BLOBS_1, OBLIQUE, phantom, write_ct

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "lesion-candidates" / "plugin.py"


def convert(dicom: Path, in_dir: Path, volume_id: int) -> None:
    done = run_kubecircus("convert", dicom, in_dir, "--volume-id", volume_id)
    assert done.returncode == 0, done.stderr


def read_results(root: Path) -> dict:
    return json.loads((root / "out" / "results.json").read_text(encoding="utf-8"))


def run_plugin(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LC_")}
    return subprocess.run(
        [sys.executable, str(PLUGIN)],
        env={**environ, "CIRCUS_DIR": str(root), **env},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def two_volumes(tmp_path_factory) -> tuple[Path, dict]:
    """<tmp>/circus/in/0.* (oblique, three blobs) and 1.* (axial, one blob), run once."""
    tmp = tmp_path_factory.mktemp("lesion")
    root = tmp / "circus"
    (root / "out").mkdir(parents=True)
    expected = {}
    for volume_id, (spec, blobs) in enumerate([(OBLIQUE, BLOBS_0), (AXIAL, BLOBS_1)]):
        values, centres = phantom(spec, blobs, lung=volume_id == 0)
        write_ct(spec, values, tmp / f"dicom{volume_id}")
        convert(tmp / f"dicom{volume_id}", root / "in", volume_id)
        voxel_mm3 = spec.pixel_spacing[0] * spec.pixel_spacing[1] * spec.slice_step
        expected[volume_id] = (spec, blobs, centres, voxel_mm3)
    done = run_plugin(root)
    assert done.returncode == 0, done.stdout + done.stderr
    return root, {"expected": expected, "log": done.stdout, "stderr": done.stderr}


def test_candidates_are_the_blobs_ranked_by_volume(two_volumes):
    root, run = two_volumes
    results = read_results(root)
    cands = results["results"]["lesionCandidates"]
    # The speck (4 mm3) is below LC_MIN_VOLUME_MM3 and the table is outside the body.
    assert [(c["rank"], c["volumeId"]) for c in cands] == [(1, 0), (2, 1), (3, 0)]
    sizes = [c["volumeSize"] for c in cands]
    assert sizes == sorted(sizes, reverse=True)
    confidences = [c["confidence"] for c in cands]
    assert confidences == sorted(confidences, reverse=True) and all(0 <= v <= 1 for v in confidences)
    wanted = [(0, 0), (1, 0), (0, 1)]  # (volume id, blob) per rank
    for cand, (volume_id, blob_no) in zip(cands, wanted, strict=True):
        spec, blobs, centres, voxel_mm3 = run["expected"][volume_id]
        blob, centre = blobs[blob_no], centres[blob_no]
        off = np.linalg.norm(np.array(cand["centroidMm"]) - centre)
        assert off <= max(spec.pixel_spacing), (cand, centre)
        assert cand["volumeSize"] == pytest.approx(blob.analytic_mm3(), rel=0.2)
        assert cand["voxelCount"] * voxel_mm3 == pytest.approx(cand["volumeSize"], rel=1e-3)


def test_location_is_the_voxel_index_circus_cs_displays(two_volumes):
    """CIRCUS CS's LesionCandidates display multiplies `location` by the voxel size: it is the
    (x, y, z) index in the volume as written, i.e. in N.mhd's grid, not patient millimetres."""
    import SimpleITK as sitk

    root, _ = two_volumes
    cands = read_results(root)["results"]["lesionCandidates"]
    for cand in cands:
        image = sitk.ReadImage(str(root / "in" / f"{cand['volumeId']}.mhd"))
        index = image.TransformPhysicalPointToContinuousIndex(cand["centroidMm"])
        np.testing.assert_allclose(index, cand["centroidIndex"], atol=2e-3)
        assert cand["location"] == [round(v) for v in index]
        assert all(isinstance(v, int) for v in cand["location"])
        assert image.GetPixel(tuple(cand["location"])) >= 100  # a solid sphere: its centre voxel is bright


def test_results_json_is_circus_cs_shaped(two_volumes):
    root, _ = two_volumes
    raw = (root / "out" / "results.json").read_bytes()
    results = json.loads(raw.decode("utf-8"))
    for cand in results["results"]["lesionCandidates"]:  # CIRCUS CS's results schema requires these
        assert isinstance(cand["confidence"], float) and isinstance(cand["volumeId"], int)
        assert len(cand["location"]) == 3 and cand["rank"] >= 1
    assert [d["volumeId"] for d in results["metadata"]["displayOptions"]] == [0, 1]
    assert [v["volumeId"] for v in results["results"]["volumes"]] == [0, 1]


def test_preview_is_the_top_candidates_slice(two_volumes):
    import SimpleITK as sitk

    root, run = two_volumes
    results = read_results(root)
    top = results["results"]["lesionCandidates"][0]
    slice_k = top["location"][2]
    assert results["results"]["preview"] == {"file": "preview.png", "volumeId": 0, "slice": slice_k}
    png = root / "out" / "preview.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = sitk.ReadImage(str(png))
    assert image.GetSize() == (OBLIQUE.columns, OBLIQUE.rows)
    assert image.GetNumberOfComponentsPerPixel() == 3
    pixels = sitk.GetArrayFromImage(image)
    magenta = np.argwhere(np.all(pixels == (255, 0, 255), axis=-1))  # (y, x)
    assert len(magenta) > 10
    x, y = top["location"][:2]
    assert np.abs(magenta.mean(axis=0) - (y, x)).max() < 2  # the outline surrounds the candidate
    assert "stderr" in run and run["stderr"] == ""  # everything went to stdout, CIRCUS CS's log
    assert "candidate 1: volume 0" in run["log"]


def test_parameters_come_from_the_environment(two_volumes, tmp_path):
    root, _ = two_volumes
    copy = tmp_path / "circus"
    (copy / "out").mkdir(parents=True)
    (copy / "in").symlink_to(root / "in")
    done = run_plugin(copy, LC_MIN_VOLUME_MM3="600", LC_BODY_HU="off", LC_MAX_VOLUME_MM3="0")
    assert done.returncode == 0, done.stdout
    cands = read_results(copy)["results"]["lesionCandidates"]
    # Without a body mask the tables are candidates; with 600 mm3 minimum only the big blob remains.
    assert all(c["volumeSize"] > 600 for c in cands)
    assert len(cands) == 3  # the two tables and the 6 mm nodule

    bad = run_plugin(copy, LC_HU_MIN="bright")
    assert bad.returncode != 0 and "LC_HU_MIN='bright' is not a number" in bad.stdout


def test_the_same_input_gives_the_same_output_whatever_the_thread_count(two_volumes, tmp_path):
    """A view of a temporary SimpleITK image once read freed memory: the body mask changed from
    run to run (found by comparing the in-cluster run with a local one)."""
    root, _ = two_volumes
    outputs = []
    for threads in ("1", "2", "8"):
        copy = tmp_path / threads / "circus"
        (copy / "out").mkdir(parents=True)
        (copy / "in").symlink_to(root / "in")
        done = run_plugin(copy, ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=threads)
        assert done.returncode == 0, done.stdout
        log = done.stdout.replace(str(copy), "/circus")
        outputs.append(
            (log, (copy / "out" / "results.json").read_bytes(), (copy / "out" / "preview.png").read_bytes())
        )
    assert outputs[0] == outputs[1] == outputs[2]


def test_fails_clearly_without_input(tmp_path):
    root = tmp_path / "circus"
    (root / "in").mkdir(parents=True)
    (root / "out").mkdir()
    done = run_plugin(root)
    assert done.returncode != 0
    assert "error: no input volume" in done.stdout
    assert done.stderr == ""
    assert not (root / "out" / "results.json").exists()


def test_fails_clearly_on_an_unreadable_volume(tmp_path):
    root = tmp_path / "circus"
    (root / "in").mkdir(parents=True)
    header = "ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementDataFile = 0.raw\n"
    (root / "in" / "0.mhd").write_text(header)  # and no 0.raw
    done = run_plugin(root)
    assert done.returncode != 0
    assert "error: cannot read volume 0.mhd" in done.stdout
    assert not (root / "out" / "results.json").exists()


def test_no_candidates_is_a_success_with_an_empty_list(tmp_path):
    import SimpleITK as sitk

    root = tmp_path / "circus"
    (root / "in").mkdir(parents=True)
    values = np.full((6, 20, 30), -1000, np.int16)
    values[:, 4:16, 5:25] = 40  # a body, nothing bright in it
    sitk.WriteImage(sitk.GetImageFromArray(values), str(root / "in" / "0.mhd"))
    done = run_plugin(root)
    assert done.returncode == 0, done.stdout
    results = read_results(root)["results"]
    assert results["lesionCandidates"] == []
    assert results["preview"] == {"file": "preview.png", "volumeId": 0, "slice": 3}
    assert sitk.ReadImage(str(root / "out" / "preview.png")).GetSize() == (30, 20)


def test_volume_0_is_required(tmp_path):
    import SimpleITK as sitk

    root = tmp_path / "circus"
    (root / "in").mkdir(parents=True)
    sitk.WriteImage(sitk.Image(4, 4, 4, sitk.sitkInt16), str(root / "in" / "1.mhd"))
    done = run_plugin(root)
    assert done.returncode != 0
    assert "error: no input volume 0" in done.stdout


def test_progress_lines_rise_to_one_across_the_volumes(two_volumes):
    from kubecircus.progress import parse_line

    _, found = two_volumes
    values = [v for v in map(parse_line, found["log"].splitlines()) if v is not None]
    assert len(values) >= 4, found["log"]  # several per volume, each within its volume's share
    assert values == sorted(values) and values[-1] == 1.0
    assert any(0 < v < 0.45 for v in values) and any(0.45 < v < 1 for v in values)
