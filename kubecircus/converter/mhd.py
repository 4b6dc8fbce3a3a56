"""The MetaImage header (``{id}.mhd``) that describes ``{id}.raw``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy stays unloaded for callers that only retarget a header
    from .geometry import Geometry


def _number(value: float) -> str:
    """Shortest text that reads back as the same double (no '-0')."""
    value = float(value) + 0.0
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def anatomical_orientation(direction: tuple[float, ...]) -> str:
    """ITK's three-letter code: per axis, the patient side it runs *from* (identity is RAI)."""
    letters = (("R", "L"), ("A", "P"), ("I", "S"))
    code = ""
    for axis in range(3):
        vector = direction[3 * axis : 3 * axis + 3]
        k = max(range(3), key=lambda i: abs(vector[i]))
        code += letters[k][0 if vector[k] > 0 else 1]
    return code


def mhd_header(geometry: Geometry, element_type: str, raw_name: str) -> str:
    """Header text in the field order ITK writes, so every MetaImage reader accepts it."""

    def numbers(values: tuple[float, ...]) -> str:
        return " ".join(_number(v) for v in values)

    lines = [
        "ObjectType = Image",
        "NDims = 3",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        "CompressedData = False",
        f"TransformMatrix = {numbers(geometry.direction)}",
        f"Offset = {numbers(geometry.origin)}",
        "CenterOfRotation = 0 0 0",
        f"AnatomicalOrientation = {anatomical_orientation(geometry.direction)}",
        f"ElementSpacing = {numbers(geometry.spacing)}",
        f"DimSize = {' '.join(str(n) for n in geometry.size)}",
        f"ElementType = {element_type}",
        f"ElementDataFile = {raw_name}",
    ]
    return "\n".join(lines) + "\n"


def retarget(header: str, raw_name: str) -> str:
    """The same header naming another data file (a cached ``volume.mhd`` laid out as ``3.mhd``)."""
    lines = header.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("ElementDataFile"):
            lines[i] = f"ElementDataFile = {raw_name}"
            return "\n".join(lines) + "\n"
    raise ValueError("not a MetaImage header: no ElementDataFile line")
