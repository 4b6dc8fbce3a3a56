"""dcm2niix, the reference DICOM converter of the neuroimaging world, as a second peer."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import SimpleITK as sitk

from kubecircus.converter import convert

from dicomfactory import SeriesSpec, orientation_of, rotation, write_series


def _dcm2niix(source, outdir):
    binary = shutil.which("dcm2niix")
    assert binary, "dcm2niix is not installed: run `make deps` (Debian package dcm2niix)"
    outdir.mkdir()
    subprocess.run(
        [binary, "-z", "n", "-f", "vol", "-o", str(outdir), str(source)], check=True, capture_output=True
    )
    (nifti,) = outdir.glob("vol*.nii")
    return sitk.ReadImage(str(nifti))


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(SeriesSpec(slices=12), id="axial"),
        pytest.param(
            SeriesSpec(orientation=orientation_of(rotation(25, 10, -15)), slice_step=2.0), id="oblique"
        ),
        pytest.param(
            SeriesSpec(signed=False, bits_stored=12, value_range=(0, 4095), slope=1, intercept=-1024),
            id="rescaled-ct",
        ),
    ],
)
def test_same_voxels_in_the_same_places_as_dcm2niix(tmp_path, spec):
    write_series(spec, tmp_path / "in")
    ours = sitk.Cast(sitk.ReadImage(str(convert(tmp_path / "in", tmp_path / "out").mhd)), sitk.sitkFloat64)
    reference = sitk.Cast(_dcm2niix(tmp_path / "in", tmp_path / "nii"), sitk.sitkFloat64)
    assert sorted(ours.GetSize()) == sorted(reference.GetSize())
    resampled = sitk.Resample(ours, reference, sitk.Transform(), sitk.sitkNearestNeighbor, -99999.0)
    got, want = sitk.GetArrayFromImage(resampled), sitk.GetArrayFromImage(reference)
    assert not np.any(got == -99999.0)
    np.testing.assert_array_equal(got, want)
