"""Slice order and voxel geometry: pure functions of the slices' headers.

Order is decided by position along the slice normal, never by file name or InstanceNumber
(unless the user asks for an InstanceNumber range, which is then written in the order asked).
The default order follows CIRCUS CS: the slice with the larger patient z comes first. Whatever
the order, the header states the truth: the origin is the first written slice's position and the
third direction column points from the first written slice to the last.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Protocol

import numpy as np

from .errors import InconsistentSeriesError, RangeError

#: Slices closer than this along the normal are at the same place (mm).
DUPLICATE_TOLERANCE_MM = 1e-3
#: A step may differ from the series' typical step by this much before it is "uneven".
SPACING_TOLERANCE_MM = 0.01
SPACING_TOLERANCE_RELATIVE = 0.02
#: Orientation cosines and pixel spacings that differ by less than this are the same.
ORIENTATION_TOLERANCE = 1e-4
#: Sideways shift of a slice (mm, or fraction of a pixel) tolerated before calling it gantry tilt.
SHEAR_TOLERANCE_MM = 0.01
SHEAR_TOLERANCE_PIXELS = 0.05

_RANGE = re.compile(r"^(\d+):(\d+):(-?[1-9]\d*)$")


class SliceLike(Protocol):
    position: tuple[float, float, float] | None
    orientation: tuple[float, float, float, float, float, float] | None
    pixel_spacing: tuple[float, float] | None
    instance_number: int | None
    columns: int
    rows: int

    @property
    def display_name(self) -> str: ...


@dataclass(frozen=True)
class SliceRange:
    """CIRCUS CS partial volume descriptor: InstanceNumbers start, start+delta, ... up to end."""

    start: int
    end: int
    delta: int

    def __str__(self) -> str:
        return f"{self.start}:{self.end}:{self.delta}"

    def instance_numbers(self) -> list[int]:
        stop = self.end + (1 if self.delta > 0 else -1)
        return list(range(self.start, stop, self.delta))


def parse_range(text: str) -> SliceRange:
    match = _RANGE.match(text.strip())
    if not match:
        raise RangeError(
            f"range '{text}' is not START:END:DELTA",
            "write e.g. 1:120:1, or 120:1:-1 for reverse order (DELTA is a non-zero integer)",
        )
    start, end, delta = (int(g) for g in match.groups())
    if (delta > 0 and start > end) or (delta < 0 and start < end):
        raise RangeError(
            f"range '{text}' selects nothing: DELTA {delta} never goes from {start} to {end}",
            "use a negative DELTA to go downwards, a positive one to go upwards",
        )
    return SliceRange(start, end, delta)


@dataclass(frozen=True)
class Geometry:
    """Voxel grid of the written volume, in the MetaImage's terms (x = columns, y = rows)."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    #: The x, y and z axis unit vectors, concatenated (MetaIO's TransformMatrix order).
    direction: tuple[float, ...]


def _normal(orientation: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    row = np.array(orientation[:3], dtype=float)
    col = np.array(orientation[3:], dtype=float)
    row /= np.linalg.norm(row)
    col /= np.linalg.norm(col)
    normal = np.cross(row, col)
    return row, col, normal / np.linalg.norm(normal)


def _check_same(
    slices: list[SliceLike], what: str, key: Callable[[SliceLike], Sequence[float]], tolerance: float
) -> None:
    first = np.array(key(slices[0]), dtype=float)
    for item in slices[1:]:
        if np.max(np.abs(np.array(key(item), dtype=float) - first)) > tolerance:
            raise InconsistentSeriesError(
                f"the series mixes {what}: {item.display_name} differs from {slices[0].display_name}",
                "the images are not one volume; export the series again or choose another",
            )


def select_range(slices: list[SliceLike], slice_range: SliceRange) -> list[SliceLike]:
    """The slices the range names, in the range's order."""
    by_number: dict[int, SliceLike] = {}
    for item in slices:
        if item.instance_number is None:
            raise RangeError(
                f"{item.display_name} has no InstanceNumber, so a range cannot select by it",
                "convert without --range",
            )
        twin = by_number.get(item.instance_number)
        if twin is not None:
            raise RangeError(
                f"InstanceNumber {item.instance_number} occurs twice ({twin.display_name} "
                f"and {item.display_name}), so a range is ambiguous",
                "convert without --range or choose the series with --series-uid",
            )
        by_number[item.instance_number] = item
    wanted = slice_range.instance_numbers()
    missing = [n for n in wanted if n not in by_number]
    if missing:
        shown = ", ".join(str(n) for n in missing[:10]) + (" ..." if len(missing) > 10 else "")
        present = f"{min(by_number)}..{max(by_number)}"
        raise RangeError(
            f"range {slice_range} names instance numbers that are not in the series: {shown}",
            f"the series has instance numbers {present}",
        )
    return [by_number[n] for n in wanted]


def order_slices(slices: list[SliceLike], slice_range: SliceRange | None) -> list[SliceLike]:
    """The slices in the order they will be written."""
    _check_same(slices, "orientations", lambda s: s.orientation or (0,) * 6, ORIENTATION_TOLERANCE)
    if slice_range is not None:
        return select_range(slices, slice_range)
    if len(slices) == 1:
        return list(slices)
    _require_positions(slices)
    _, _, normal = _normal(slices[0].orientation)  # type: ignore[arg-type]
    ordered = sorted(slices, key=lambda s: float(np.dot(s.position, normal)))  # type: ignore[arg-type]
    if ordered[0].position[2] < ordered[-1].position[2]:  # type: ignore[index]
        ordered.reverse()  # CIRCUS CS: the slice with the larger patient z first
    return ordered


def _require_positions(slices: list[SliceLike]) -> None:
    for item in slices:
        if item.position is None or item.orientation is None:
            raise InconsistentSeriesError(
                f"{item.display_name} has no ImagePositionPatient/ImageOrientationPatient",
                "a volume needs slice positions; this looks like a secondary capture, not a scan",
            )


def _fmt(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def build_geometry(ordered: list[SliceLike], single_slice_thickness: float = 1.0) -> Geometry:
    """Geometry of the volume written in ``ordered`` order, refusing irregular slice stacks."""
    first = ordered[0]
    _check_same(ordered, "pixel spacings", lambda s: s.pixel_spacing or (1.0, 1.0), ORIENTATION_TOLERANCE)
    row_spacing, col_spacing = first.pixel_spacing or (1.0, 1.0)
    size = (first.columns, first.rows, len(ordered))
    if len(ordered) == 1:
        row, col, normal = _normal(first.orientation or (1, 0, 0, 0, 1, 0))
        origin = tuple(first.position or (0.0, 0.0, 0.0))
        spacing = (col_spacing, row_spacing, single_slice_thickness)
        return Geometry(size, spacing, origin, (*row, *col, *normal))  # type: ignore[arg-type]
    _require_positions(ordered)
    row, col, normal = _normal(first.orientation)  # type: ignore[arg-type]
    positions = np.array([s.position for s in ordered], dtype=float)
    along = positions @ normal
    steps = np.diff(along)
    _check_steps(ordered, along, steps)
    _check_shear(ordered, positions, normal, min(row_spacing, col_spacing))
    z_spacing = abs(along[-1] - along[0]) / (len(ordered) - 1)
    z_axis = normal if along[-1] > along[0] else -normal
    origin = tuple(float(v) for v in positions[0])
    direction = tuple(float(v) + 0.0 for v in (*row, *col, *z_axis))
    return Geometry(size, (col_spacing, row_spacing, float(z_spacing)), origin, direction)  # type: ignore[arg-type]


def _check_steps(ordered: list[SliceLike], along: np.ndarray, steps: np.ndarray) -> None:
    for i, step in enumerate(steps):
        if abs(step) < DUPLICATE_TOLERANCE_MM:
            raise InconsistentSeriesError(
                f"{ordered[i].display_name} and {ordered[i + 1].display_name} are at the same position "
                f"({_fmt(along[i])} mm along the slice normal)",
                "the source holds the same slice twice or two acquisitions; keep one of them",
            )
    if not (np.all(steps > 0) or np.all(steps < 0)):
        i = int(np.argmax(np.sign(steps) != np.sign(steps[0])))
        raise InconsistentSeriesError(
            f"the requested order turns back at {ordered[i + 1].display_name}: positions along the slice "
            f"normal go {_fmt(along[i])} -> {_fmt(along[i + 1])} -> {_fmt(along[i + 2])} mm",
            "choose a range whose instance numbers follow the slice positions",
        )
    typical = median(abs(float(s)) for s in steps)
    tolerance = max(SPACING_TOLERANCE_MM, SPACING_TOLERANCE_RELATIVE * typical)
    for i, step in enumerate(steps):
        size = abs(float(step))
        if abs(size - typical) <= tolerance:
            continue
        between = (
            f"between {ordered[i].display_name} at {_fmt(along[i])} mm and "
            f"{ordered[i + 1].display_name} at {_fmt(along[i + 1])} mm"
        )
        if size > 1.5 * typical:
            missing = round(size / typical) - 1
            raise InconsistentSeriesError(
                f"slices are missing: a gap of {_fmt(size)} mm {between} where the series steps "
                f"{_fmt(typical)} mm (about {missing} missing)",
                "re-send the complete series from the PACS",
            )
        raise InconsistentSeriesError(
            f"uneven slice spacing: a step of {_fmt(size)} mm {between} where the series steps "
            f"{_fmt(typical)} mm",
            "the series is not a regular volume; re-export it or choose another series",
        )


def _check_shear(ordered: list[SliceLike], positions: np.ndarray, normal: np.ndarray, pixel: float) -> None:
    offsets = positions - positions[0]
    along = offsets @ normal
    sideways = np.linalg.norm(offsets - np.outer(along, normal), axis=1)
    tolerance = max(SHEAR_TOLERANCE_MM, SHEAR_TOLERANCE_PIXELS * pixel)
    worst = int(np.argmax(sideways))
    if sideways[worst] > tolerance:
        tilt = math.degrees(math.atan2(sideways[worst], abs(along[worst])))
        shift = _fmt(sideways[worst])
        raise InconsistentSeriesError(
            f"slices shift sideways along the stack ({shift} mm at {ordered[worst].display_name}, "
            f"a tilt of {tilt:.1f} degrees): the series was acquired with gantry tilt",
            "CIRCUS CS volumes cannot hold a sheared grid; use a series reconstructed without tilt",
        )
