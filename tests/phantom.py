"""A CT phantom with known lesions: air, a body, a lung, a CT table and spheres of 300 HU.

Shared by the lesion-candidates plug-in's tests and the end-to-end data path tests, which
compare the plug-in run by kubecircus with the same plug-in run locally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dicomfactory import SeriesSpec, make_slices, orientation_of, rotation, save


@dataclass
class Blob:
    center_index: tuple[float, float, float]  # (column, row, slice): where the sphere is put
    radius_mm: float

    def analytic_mm3(self) -> float:
        return 4 / 3 * math.pi * self.radius_mm**3


def voxel_positions(spec: SeriesSpec) -> np.ndarray:
    """(slices, rows, columns, 3) patient positions of the voxel centres, from the DICOM rules:
    IPP + column * PixelSpacing[1] * row direction + row * PixelSpacing[0] * column direction."""
    o = np.array(spec.orientation, dtype=float)
    row_dir, col_dir, normal = o[:3], o[3:], spec.normal()
    k, r, c = np.meshgrid(range(spec.slices), range(spec.rows), range(spec.columns), indexing="ij")
    return (
        np.array(spec.origin)
        + k[..., None] * spec.slice_step * normal
        + c[..., None] * spec.pixel_spacing[1] * row_dir
        + r[..., None] * spec.pixel_spacing[0] * col_dir
    )


def phantom(spec: SeriesSpec, blobs: list[Blob], lung: bool = True) -> tuple[np.ndarray, list[np.ndarray]]:
    """HU values (slices, rows, columns) and, per blob, its physical centre as placed."""
    rng = np.random.default_rng(11)
    values = np.full((spec.slices, spec.rows, spec.columns), -1000.0)
    _, r, c = np.meshgrid(range(spec.slices), range(spec.rows), range(spec.columns), indexing="ij")
    cy, cx = (spec.rows - 1) / 2 - 3, (spec.columns - 1) / 2
    body = ((r - cy) / (spec.rows * 0.38)) ** 2 + ((c - cx) / (spec.columns * 0.44)) ** 2 <= 1
    values[body] = 40 + rng.normal(0, 15, int(body.sum()))
    if lung:  # a hole in every slice of the body: nodules in it must still count as inside
        lx = cx - spec.columns * 0.2
        inside = ((r - cy) / (spec.rows * 0.22)) ** 2 + ((c - lx) / (spec.columns * 0.18)) ** 2
        values[inside <= 1] = -850 + rng.normal(0, 15, int((inside <= 1).sum()))
    values[:, spec.rows - 3 :, :] = 300  # the CT table: bright, big, outside the body
    positions = voxel_positions(spec)
    centres = []
    for blob in blobs:
        k, row, col = blob.center_index[2], blob.center_index[1], blob.center_index[0]
        centre = positions[0, 0, 0] + (
            k * spec.slice_step * spec.normal()
            + col * spec.pixel_spacing[1] * np.array(spec.orientation[:3])
            + row * spec.pixel_spacing[0] * np.array(spec.orientation[3:])
        )
        inside = np.linalg.norm(positions - centre, axis=-1) <= blob.radius_mm
        values[inside] = 300 + rng.normal(0, 15, int(inside.sum()))
        centres.append(centre)
    return np.rint(values).astype(np.int16), centres


def write_ct(spec: SeriesSpec, values: np.ndarray, folder: Path) -> None:
    datasets = make_slices(spec.with_(signed=True, bits_allocated=16, bits_stored=16))
    for ds, plane in zip(datasets, values, strict=True):
        ds.PixelData = plane.tobytes()
    save(datasets, folder)


OBLIQUE = SeriesSpec(
    rows=60,
    columns=64,
    slices=36,
    pixel_spacing=(0.8, 0.7),
    slice_step=1.5,
    orientation=orientation_of(rotation(20, 10, 5)),
    origin=(-20.0, -25.0, 80.0),
    description="oblique CT",
)
# Volume 0: a big nodule in the lung, a smaller one in soft tissue, a speck below the minimum.
BLOBS_0 = [Blob((20, 26, 18), 6.0), Blob((46, 30, 14), 4.5), Blob((40, 18, 24), 1.0)]
AXIAL = SeriesSpec(rows=48, columns=40, slices=24, pixel_spacing=(0.9, 0.9), slice_step=2.0, description="ax")
BLOBS_1 = [Blob((22, 20, 12), 5.0)]
