"""Table tests of the converter's pure decisions (no files)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kubecircus.converter.errors import InconsistentSeriesError, RangeError
from kubecircus.converter.geometry import SliceRange, build_geometry, order_slices, parse_range
from kubecircus.converter.mhd import anatomical_orientation
from kubecircus.converter.pixels import PixelFormat, ValueStats, type_for_values, type_from_headers


@pytest.mark.parametrize(
    ("fmt", "rescales", "expected"),
    [
        (PixelFormat(16, 16, True), [(1, 0)], "MET_SHORT"),
        (PixelFormat(16, 12, False), [(1, 0)], "MET_USHORT"),
        (PixelFormat(8, 8, False), [(1, 0)], "MET_UCHAR"),
        (PixelFormat(8, 8, True), [(1, 0)], "MET_CHAR"),
        (PixelFormat(32, 32, True), [(1, 0)], "MET_INT"),
        (PixelFormat(16, 12, False), [(1, -1024)], "MET_SHORT"),  # bounds -1024..3071
        (PixelFormat(16, 16, False), [(1, -1024)], None),  # bounds overflow: look at values
        (PixelFormat(16, 12, True), [(1, -1024), (2, 0)], "MET_SHORT"),
        (PixelFormat(16, 12, False), [(0.5, 0)], None),  # fractions: look at values
        (PixelFormat(16, 16, True), [(1, 0), (1, 1)], None),
    ],
)
def test_element_type_from_headers(fmt, rescales, expected):
    assert type_from_headers(fmt, rescales) == expected


@pytest.mark.parametrize(
    ("stats", "expected"),
    [
        (ValueStats(-32768, 32767, True), "MET_SHORT"),
        (ValueStats(-32769, 0, True), "MET_INT"),
        (ValueStats(0, 32768, True), "MET_INT"),
        (ValueStats(0, 2**31, True), "MET_FLOAT"),
        (ValueStats(0, 10, False), "MET_FLOAT"),
    ],
)
def test_element_type_from_values(stats, expected):
    assert type_for_values(stats) == expected


@pytest.mark.parametrize(
    ("text", "numbers"),
    [("1:3:1", [1, 2, 3]), ("3:1:-1", [3, 2, 1]), ("1:6:2", [1, 3, 5]), (" 7:7:5 ", [7])],
)
def test_parse_range(text, numbers):
    assert parse_range(text).instance_numbers() == numbers


@pytest.mark.parametrize("text", ["", "1:2", "1:2:0", "a:b:c", "1:5:-1", "5:1:2", "-1:3:1", "1:2:3:4"])
def test_parse_range_refuses(text):
    with pytest.raises(RangeError):
        parse_range(text)


@dataclass
class FakeSlice:
    """Just the header facts the geometry decisions read."""

    position: tuple[float, float, float] | None
    instance_number: int | None = None
    orientation: tuple[float, ...] | None = (1, 0, 0, 0, 1, 0)
    pixel_spacing: tuple[float, float] | None = (0.5, 0.25)
    columns: int = 4
    rows: int = 3

    @property
    def display_name(self) -> str:
        return f"image {self.instance_number}"


def _stack(zs, numbers=None):
    numbers = numbers or list(range(1, len(zs) + 1))
    return [FakeSlice((0.0, 0.0, float(z)), n) for z, n in zip(zs, numbers, strict=True)]


@pytest.mark.parametrize(
    ("zs", "expected_first_z", "z_axis"),
    [([0, 1, 2, 3], 3, -1), ([3, 2, 1, 0], 3, -1), ([2, 0, 3, 1], 3, -1), ([-5, -7, -6], -5, -1)],
)
def test_default_order_is_larger_z_first(zs, expected_first_z, z_axis):
    ordered = order_slices(_stack(zs), None)
    geometry = build_geometry(ordered)
    assert geometry.origin[2] == expected_first_z
    assert geometry.direction[8] == z_axis
    assert geometry.spacing == (0.25, 0.5, 1.0)  # x = column spacing, y = row spacing


def test_range_order_wins_and_is_stated_in_the_geometry():
    ordered = order_slices(_stack([0, 1, 2, 3]), SliceRange(1, 4, 1))
    geometry = build_geometry(ordered)
    assert [s.instance_number for s in ordered] == [1, 2, 3, 4]
    assert geometry.origin[2] == 0 and geometry.direction[8] == 1


@pytest.mark.parametrize(
    ("zs", "message"),
    [
        ([0, 1, 2, 4, 5], r"gap of 2 mm between image 3 at 2 mm and image 4 at 4 mm .*\(about 1 missing\)"),
        ([0, 1, 2, 5, 6], r"about 2 missing"),
        ([0, 1, 2, 3.3, 4.3], r"uneven slice spacing: a step of 1.3 mm"),
        ([0, 1, 1, 2], r"image 2 and image 3 are at the same position"),
    ],
)
def test_irregular_stacks_are_refused(zs, message):
    with pytest.raises(InconsistentSeriesError, match=message):
        build_geometry(order_slices(_stack(zs), SliceRange(1, len(zs), 1)))


def test_small_rounding_in_positions_is_tolerated():
    geometry = build_geometry(order_slices(_stack([0, 0.6251, 1.2499, 1.875]), None))
    assert geometry.spacing[2] == pytest.approx(0.625)


@pytest.mark.parametrize(
    ("direction", "code"),
    [
        ((1, 0, 0, 0, 1, 0, 0, 0, 1), "RAI"),
        ((0, 0, -1, 1, 0, 0, 0, -1, 0), "SRP"),
        ((1, 0, 0, 0, 0, -1, 0, 1, 0), "RSA"),
    ],
)
def test_anatomical_orientation_matches_itk(direction, code):
    assert anatomical_orientation(direction) == code
