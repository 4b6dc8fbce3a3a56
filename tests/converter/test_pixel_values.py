"""Values written: modality values in the right element type; compressed = uncompressed twin."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit

from kubecircus.converter import convert
from kubecircus.converter.pixels import element_values, modality_values, to_element_type

from dicomfactory import SeriesSpec, bundled, make_slices, save, write_series

DTYPES = {
    "MET_UCHAR": "u1",
    "MET_CHAR": "i1",
    "MET_USHORT": "<u2",
    "MET_SHORT": "<i2",
    "MET_INT": "<i4",
    "MET_FLOAT": "<f4",
}


def _volume(result) -> np.ndarray:
    x, y, z = result.size
    return np.fromfile(result.raw, dtype=DTYPES[result.element_type]).reshape(z, y, x)


@pytest.mark.parametrize(
    ("spec", "element_type"),
    [
        pytest.param(SeriesSpec(), "MET_SHORT", id="int16-identity"),
        pytest.param(SeriesSpec(signed=False, value_range=(0, 65535)), "MET_USHORT", id="uint16-identity"),
        pytest.param(
            SeriesSpec(bits_allocated=8, bits_stored=8, signed=False, value_range=(0, 255)),
            "MET_UCHAR",
            id="uint8-identity",
        ),
        pytest.param(
            SeriesSpec(bits_allocated=8, bits_stored=8, value_range=(-128, 127)),
            "MET_CHAR",
            id="int8-identity",
        ),
        # Typical CT: 12 stored bits, unsigned, intercept -1024: the headers settle MET_SHORT.
        pytest.param(
            SeriesSpec(signed=False, bits_stored=12, value_range=(0, 4095), slope=1, intercept=-1024),
            "MET_SHORT",
            id="ct-12bit-intercept",
        ),
        # 16 stored bits could overflow int16, but the actual values fit: still MET_SHORT.
        pytest.param(
            SeriesSpec(signed=False, value_range=(0, 4000), slope=1, intercept=-1024),
            "MET_SHORT",
            id="uint16-values-fit-short",
        ),
        pytest.param(
            SeriesSpec(signed=False, value_range=(30000, 65535), slope=2, intercept=-1024),
            "MET_INT",
            id="integers-beyond-short",
        ),
        pytest.param(SeriesSpec(value_range=(-500, 500), slope=0.5, intercept=0.25), "MET_FLOAT", id="float"),
        pytest.param(
            SeriesSpec(value_range=(-500, 500), slope=0.5, intercept=1.5).with_(seed=3),
            "MET_FLOAT",
            id="float-odd-values",
        ),
    ],
)
def test_modality_values_in_the_narrowest_exact_type(tmp_path, spec, element_type):
    write_series(spec, tmp_path / "in")
    result = convert(tmp_path / "in", tmp_path / "out", slice_range=f"1:{spec.slices}:1")
    assert result.element_type == element_type
    slope, intercept = spec.slope or 1, spec.intercept or 0
    expected = spec.stored_values().astype(np.float64) * slope + intercept
    np.testing.assert_array_equal(_volume(result).astype(np.float64), expected)
    header = result.mhd.read_text()
    assert f"ElementType = {element_type}\n" in header and "BinaryDataByteOrderMSB = False" in header


def test_per_slice_rescale_is_applied_slice_by_slice(tmp_path):
    spec = SeriesSpec(slices=4, value_range=(0, 1000))
    datasets = make_slices(spec)
    for i, ds in enumerate(datasets):
        ds.RescaleSlope, ds.RescaleIntercept = i + 1, -10 * i
    save(datasets, tmp_path / "in")
    result = convert(tmp_path / "in", tmp_path / "out", slice_range="1:4:1")
    expected = np.stack([v * (i + 1) - 10 * i for i, v in enumerate(spec.stored_values().astype(float))])
    assert result.element_type == "MET_SHORT"
    np.testing.assert_array_equal(_volume(result), expected)


def test_values_match_simpleitk_on_a_rescaled_ct(tmp_path):
    spec = SeriesSpec(signed=False, bits_stored=12, value_range=(0, 4095), slope=1, intercept=-1024)
    write_series(spec, tmp_path / "in")
    result = convert(tmp_path / "in", tmp_path / "out")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "in")))
    reference = sitk.GetArrayFromImage(reader.Execute())  # SimpleITK: ascending along the normal
    np.testing.assert_array_equal(_volume(result)[::-1], reference)


TWINS = [
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
]


@pytest.mark.parametrize("name", TWINS)
def test_lossless_syntaxes_decode_to_the_uncompressed_twin(tmp_path, name):
    reference = convert(bundled("MR_small.dcm"), tmp_path / "ref")
    twin = convert(bundled(name), tmp_path / "twin")
    assert pydicom.dcmread(bundled(name)).file_meta.TransferSyntaxUID != "1.2.840.10008.1.2.1"
    assert twin.element_type == reference.element_type
    np.testing.assert_array_equal(_volume(twin), _volume(reference))


def test_jpeg_lossless_decodes_to_the_uncompressed_twin(tmp_path):
    image = sitk.ReadImage(str(bundled("MR_small.dcm")))
    writer = sitk.ImageFileWriter()
    writer.SetFileName(str(tmp_path / "jpeg_lossless.dcm"))
    writer.SetUseCompression(True)
    writer.SetCompressor("JPEG")  # GDCM writes JPEG Lossless, process 14 SV1
    writer.Execute(image)
    ts = pydicom.dcmread(tmp_path / "jpeg_lossless.dcm").file_meta.TransferSyntaxUID
    assert ts == "1.2.840.10008.1.2.4.70"
    result = convert(tmp_path / "jpeg_lossless.dcm", tmp_path / "out")
    np.testing.assert_array_equal(_volume(result)[0], sitk.GetArrayFromImage(image)[0])


def test_jpeg_baseline_decodes_like_an_independent_decoder(tmp_path):
    spec = SeriesSpec(
        slices=1, rows=64, columns=64, bits_allocated=8, bits_stored=8, signed=False, value_range=(0, 255)
    )
    ds = make_slices(spec)[0]
    smooth = (np.add.outer(np.arange(64), np.arange(64)) * 2).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(smooth, mode="L").save(buffer, format="JPEG", quality=85)
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.save_as(tmp_path / "baseline.dcm", enforce_file_format=True)
    result = convert(tmp_path / "baseline.dcm", tmp_path / "out")
    pillow = np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.int16)
    gdcm = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "baseline.dcm")))[0].astype(np.int16)
    ours = _volume(result)[0].astype(np.int16)
    assert result.element_type == "MET_UCHAR"
    # Lossy: the decoders' IDCTs may differ by one grey level, never more.
    assert np.abs(ours - pillow).max() <= 1 and np.abs(ours - gdcm).max() <= 1
    assert np.abs(ours - smooth.astype(np.int16)).mean() < 3  # and it is the image we encoded


@pytest.mark.parametrize("name", ["JPGExtended.dcm", "JPEG2000.dcm", "693_J2KI.dcm"])
def test_other_compressed_files_match_simpleitk(tmp_path, name):
    shutil.copy(bundled(name), tmp_path / name)
    result = convert(tmp_path / name, tmp_path / "out")
    gdcm = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / name))).astype(np.int32)
    ours = _volume(result).astype(np.int32)
    assert ours.shape == gdcm.shape
    assert np.abs(ours - gdcm).max() <= 1


def test_a_malformed_jpeg_stream_is_refused_not_guessed(tmp_path):
    """JPEG-lossy.dcm has invalid SOS parameters (pydicom's README; GDCM warns and guesses)."""
    from kubecircus.converter import ConversionError

    with pytest.raises(ConversionError, match=r"cannot decode the pixel data of image 5 .*JPEG Extended"):
        convert(bundled("JPEG-lossy.dcm"), tmp_path / "out")
    assert not (tmp_path / "out" / "0.mhd").exists()


RESCALES = [(1, 0), (1, -1024), (2, -1024), (-1, 0), (3, 70000), (1.0, -1024.0), (65537, -3)]
RESCALES += [(2**40, 5), (2**63 - 1, -(2**63)), (2**63, 0), (1, 2**62), (0.5, 0), (1, 0.5)]


@pytest.mark.parametrize("stored", ["u1", "i1", "<u2", "<i2", "<u4", "<i4"])
def test_fast_element_values_are_the_general_route_bytes(stored):
    """Wrapping arithmetic in the element type's width is exact, overflow included."""
    info = np.iinfo(np.dtype(stored))
    values = np.random.default_rng(3).integers(info.min, info.max, size=4000, endpoint=True)
    values[:4] = [info.min, info.max, 0, 1]
    values = values.astype(stored)
    for element_type in [
        "MET_UCHAR",
        "MET_CHAR",
        "MET_USHORT",
        "MET_SHORT",
        "MET_UINT",
        "MET_INT",
        "MET_FLOAT",
    ]:
        for slope, intercept in RESCALES:
            with np.errstate(all="ignore"):
                try:
                    expected = to_element_type(
                        modality_values(values, slope, intercept), element_type
                    ).tobytes()
                except OverflowError:
                    with pytest.raises(OverflowError):
                        element_values(values, slope, intercept, element_type)
                    continue
                got = element_values(values, slope, intercept, element_type).tobytes()
            assert got == expected, (stored, element_type, slope, intercept)


@pytest.mark.parametrize("stored", ["u1", "i1", "<u2", "<i2", "<u4", "<i4"])
def test_slices_read_into_a_buffer_are_the_element_values_bytes(tmp_path, stored):
    """The raw stream's in-place route gives element_values' bytes, or declines (None)."""
    from dataclasses import replace

    from kubecircus.converter.pixels import read_element_into
    from kubecircus.converter.scan import read_header

    info = np.iinfo(np.dtype(stored))
    values = np.random.default_rng(5).integers(info.min, info.max, size=(20, 24), endpoint=True)
    values.flat[:4] = [info.min, info.max, 0, 1]
    values = values.astype(stored)
    path = tmp_path / "slice.bin"
    path.write_bytes(b"\xee" * 7 + values.tobytes() + b"\xee" * 3)
    (header,) = (read_header(p) for p in write_series(SeriesSpec(slices=1), tmp_path / "series"))
    header = replace(
        header,
        path=path,
        pixel_offset=7,
        pixel_length=values.nbytes,
        bits_allocated=values.itemsize * 8,
        pixel_representation=int(values.dtype.kind == "i"),
    )
    buffer = np.empty(values.nbytes + 5, np.uint8)
    taken = 0
    for element_type in DTYPES:
        for slope, intercept in RESCALES:
            with np.errstate(all="ignore"):
                try:
                    expected = element_values(values, slope, intercept, element_type).tobytes()
                except OverflowError:
                    expected = None
                got = read_element_into(
                    replace(header, slope=slope, intercept=intercept), element_type, buffer
                )
            if got is not None:
                taken += 1
                assert got.tobytes() == expected, (stored, element_type, slope, intercept)
    assert taken > 0
    assert read_element_into(replace(header, pixel_length=values.nbytes - 1), "MET_SHORT", buffer) is None
    assert read_element_into(replace(header, path=tmp_path / "gone"), "MET_SHORT", buffer) is None
