"""Geometry and voxels compared with SimpleITK's ImageSeriesReader on synthetic series."""

from __future__ import annotations

import random

import numpy as np
import pytest
import SimpleITK as sitk

from kubecircus.converter import convert

from conftest import assert_same_physical_image, sitk_series
from dicomfactory import SeriesSpec, orientation_of, rotation, write_series

OBLIQUE = orientation_of(rotation(17, -23, 11))
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(SeriesSpec(), id="axial"),
        pytest.param(SeriesSpec(slice_step=-1.25), id="axial-descending-z"),
        pytest.param(SeriesSpec(orientation=OBLIQUE, slice_step=3.0, pixel_spacing=(0.7, 0.9)), id="oblique"),
        pytest.param(SeriesSpec(orientation=CORONAL), id="coronal"),
        pytest.param(SeriesSpec(orientation=SAGITTAL, rows=16, columns=30), id="sagittal"),
        pytest.param(SeriesSpec(slices=1), id="single-slice"),
    ],
)
def test_volume_is_the_physical_image_simpleitk_reads(tmp_path, spec):
    write_series(spec, tmp_path / "in")
    result = convert(tmp_path / "in", tmp_path / "out")
    assert_same_physical_image(result.mhd, sitk_series(tmp_path / "in"))


def test_default_order_puts_the_larger_patient_z_first(tmp_path):
    spec = SeriesSpec(slices=5, slice_step=2.0, origin=(0.0, 0.0, -20.0))
    write_series(spec, tmp_path / "in")
    result = convert(tmp_path / "in", tmp_path / "out")
    assert result.origin == pytest.approx(spec.position(4))  # z = -12, the largest
    assert result.direction[6:] == pytest.approx((0.0, 0.0, -1.0))
    header = dict(line.split(" = ", 1) for line in result.mhd.read_text().splitlines())
    assert header["Offset"].split() == ["0", "0", "-12"]
    assert header["TransformMatrix"].split() == ["1", "0", "0", "0", "1", "0", "0", "0", "-1"]
    assert header["ElementSpacing"].split() == ["0.6", "0.8", "2"]  # x = column spacing
    assert header["DimSize"].split() == [str(spec.columns), str(spec.rows), "5"]
    raw = np.fromfile(result.raw, dtype="<i2").reshape(5, spec.rows, spec.columns)
    np.testing.assert_array_equal(raw, spec.stored_values()[::-1])


def test_order_ignores_file_names_and_instance_numbers(tmp_path):
    spec = SeriesSpec(slices=9)
    plain = convert(_written(spec, tmp_path / "plain"), tmp_path / "o1")
    names = [f"{name}.dcm" for name in random.Random(3).sample(range(1000, 9999), spec.slices)]
    shuffled_spec = spec.with_(instance_numbers=list(range(spec.slices, 0, -1)))
    shuffled = convert(_written(shuffled_spec, tmp_path / "shuffled", names), tmp_path / "o2")
    assert shuffled.raw_sha256 == plain.raw_sha256
    assert shuffled.origin == plain.origin and shuffled.direction == plain.direction


def test_z_spacing_is_the_measured_position_step_not_slice_thickness(tmp_path):
    spec = SeriesSpec(slice_step=1.5)
    datasets_dir = _written(spec, tmp_path / "in")
    for path in datasets_dir.iterdir():  # lie about the thickness: positions are the truth
        import pydicom

        ds = pydicom.dcmread(path)
        ds.SliceThickness = 5.0
        ds.save_as(path)
    result = convert(datasets_dir, tmp_path / "out")
    assert result.spacing[2] == pytest.approx(1.5)


def test_simpleitk_reads_the_header_fields_we_meant(tmp_path):
    spec = SeriesSpec(orientation=OBLIQUE, slice_step=2.0)
    result = convert(_written(spec, tmp_path / "in"), tmp_path / "out")
    image = sitk.ReadImage(str(result.mhd))
    assert image.GetOrigin() == pytest.approx(result.origin)
    assert image.GetSpacing() == pytest.approx(result.spacing)
    matrix = np.array(image.GetDirection()).reshape(3, 3)  # ITK: row-major, columns are the axes
    np.testing.assert_allclose(matrix.T.ravel(), result.direction, atol=1e-9)


def _written(spec: SeriesSpec, folder, names=None):
    write_series(spec, folder, names)
    return folder
