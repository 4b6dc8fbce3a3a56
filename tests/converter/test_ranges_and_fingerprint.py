"""Instance-number ranges (CIRCUS partial volume descriptor) and the cache fingerprint."""

from __future__ import annotations

import json

import numpy as np
import pytest

import kubecircus.converter.fingerprint as fingerprint_module
from kubecircus.converter import convert, plan_conversion

from conftest import sitk_series
from dicomfactory import SeriesSpec, write_series


@pytest.fixture
def series(tmp_path):
    spec = SeriesSpec(slices=10)
    write_series(spec, tmp_path / "in")
    return spec, tmp_path / "in"


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("1:10:1", range(1, 11)),
        ("3:7:1", range(3, 8)),
        ("10:1:-1", range(10, 0, -1)),
        ("2:9:3", [2, 5, 8]),
        ("9:1:-4", [9, 5, 1]),
        ("4:4:1", [4]),
    ],
)
def test_range_selects_by_instance_number_in_the_order_asked(tmp_path, series, text, numbers):
    spec, source = series
    result = convert(source, tmp_path / "out", slice_range=text)
    numbers = list(numbers)
    raw = np.fromfile(result.raw, dtype="<i2").reshape(len(numbers), spec.rows, spec.columns)
    stored = spec.stored_values()
    np.testing.assert_array_equal(raw, stored[[n - 1 for n in numbers]])
    assert result.origin == pytest.approx(spec.position(numbers[0] - 1))
    if len(numbers) > 1:
        assert result.spacing[2] == pytest.approx(abs(numbers[1] - numbers[0]) * spec.slice_step)
        sign = 1 if numbers[-1] > numbers[0] else -1
        assert result.direction[6:] == pytest.approx((0, 0, sign))
    dump = json.loads(result.json.read_text())
    slices = [{**dump["common"], **u} for u in dump["unique"]]  # one slice: everything is common
    assert [int(s["0020,0013"]) for s in slices] == numbers


def test_ascending_range_is_the_same_physical_image_as_simpleitk(tmp_path, series):
    from conftest import assert_same_physical_image

    _, source = series
    result = convert(source, tmp_path / "out", slice_range="1:10:1")
    assert_same_physical_image(result.mhd, sitk_series(source))


def test_fingerprint_is_stable_and_covers_what_decides_the_output(tmp_path, series, monkeypatch):
    spec, source = series
    base = plan_conversion(source).fingerprint
    assert len(base) == 64 and base == plan_conversion(source).fingerprint
    # Same images under other names and folders: same key.
    write_series(spec.with_(), tmp_path / "elsewhere", names=[f"x{i}.dcm" for i in range(10)])
    for path in sorted((tmp_path / "elsewhere").iterdir()):
        path.rename(tmp_path / "elsewhere" / f"renamed-{path.name}")
    # (fresh UIDs are generated per write, so compare a copy of the same files instead)
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in source.iterdir():
        (copy / f"z-{path.name}").write_bytes(path.read_bytes())
    assert plan_conversion(copy).fingerprint == base
    # Anything that changes the output changes the key.
    others = {
        plan_conversion(source, slice_range="1:10:1").fingerprint,
        plan_conversion(source, slice_range="2:10:1").fingerprint,
        plan_conversion(source, keep_private={0x00191010}).fingerprint,
        plan_conversion(tmp_path / "elsewhere").fingerprint,  # other SOPInstanceUIDs
    }
    assert base not in others and len(others) == 4
    monkeypatch.setattr(fingerprint_module, "CONVERTER_VERSION", "999")
    assert plan_conversion(source).fingerprint != base


def test_planning_reads_no_pixel_data(tmp_path, series, monkeypatch):
    from kubecircus.converter import pixels

    def forbidden(*_args, **_kwargs):
        raise AssertionError("planning must not decode pixels")

    monkeypatch.setattr(pixels, "read_stored", forbidden)
    plan = plan_conversion(series[1])
    assert plan.geometry.size == (24, 20, 10)


def test_result_reports_what_was_written(tmp_path, series):
    import hashlib

    result = convert(series[1], tmp_path / "out", volume_id=2)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["2.json", "2.mhd", "2.raw"]
    assert result.raw_sha256 == hashlib.sha256(result.raw.read_bytes()).hexdigest()
    assert "ElementDataFile = 2.raw" in result.mhd.read_text()
    data = result.to_dict()
    assert data["fingerprint"] == result.fingerprint and data["size"] == (24, 20, 10)
    json.dumps(data)  # serialisable for the staging manifest
