"""Shared fixtures: the CLI runner and SimpleITK references."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

KUBECIRCUS = Path(sys.executable).with_name("kubecircus")


def run_kubecircus(*args: object) -> subprocess.CompletedProcess[str]:
    """Run the installed ``kubecircus`` entry point, as a user would."""
    assert KUBECIRCUS.exists(), f"the kubecircus entry point is not installed next to {sys.executable}"
    return subprocess.run(
        [str(KUBECIRCUS), *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
        check=False,
    )


@pytest.fixture
def cli():
    return run_kubecircus


def sitk_series(folder: Path, series_uid: str = ""):
    """The series as SimpleITK's own ImageSeriesReader (GDCM) reads it: the geometry reference."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    names = reader.GetGDCMSeriesFileNames(str(folder), series_uid)
    assert names, f"SimpleITK found no series in {folder}"
    reader.SetFileNames(names)
    return reader.Execute()


def assert_same_physical_image(mhd: Path, reference) -> None:
    """Our .mhd, read by SimpleITK and resampled (nearest neighbour) onto the reference grid,
    holds exactly the reference's values: same voxels at the same places in patient space."""
    import SimpleITK as sitk

    mine = sitk.ReadImage(str(mhd))
    assert mine.GetSize() == reference.GetSize()
    # A single slice has no measured z step: SimpleITK says 1.0, we say the slice thickness.
    axes = [i for i in range(3) if reference.GetSize()[i] > 1]
    np.testing.assert_allclose(
        [mine.GetSpacing()[i] for i in axes], [reference.GetSpacing()[i] for i in axes], rtol=1e-6
    )
    outside = -99999.0
    resampled = sitk.Resample(
        sitk.Cast(mine, sitk.sitkFloat64), reference, sitk.Transform(), sitk.sitkNearestNeighbor, outside
    )
    got = sitk.GetArrayFromImage(resampled)
    want = sitk.GetArrayFromImage(reference).astype(np.float64)
    assert not np.any(got == outside), "part of the reference grid falls outside our volume"
    np.testing.assert_array_equal(got, want)


def pytest_collection_modifyitems(items):
    """tests/cluster/ and tests/e2e/ need the real cluster, tests using the ``minio`` fixture a
    MinIO binary (own or for an outage): mark them so `make test-unit` runs with Python alone."""
    for item in items:
        if "/tests/cluster/" in str(item.path) or "/tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.cluster)
        if {"minio", "outage_store"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.store)
    # The converter forks header readers only while its process runs no other thread (forking
    # beside a thread can deadlock the child); tests that leave a thread behind (API clients,
    # listeners) would turn its parallel path off. So its tests run first, in a thread-free process.
    items.sort(key=lambda item: 0 if item.path.name == "test_parallel.py" else 1)
