"""Bad input: exit status 1, one actionable line on stderr, no traceback, no N.* left behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicomfactory import SeriesSpec, bundled, make_slices, save, write_series


def _gap(folder: Path) -> None:
    datasets = make_slices(SeriesSpec(slices=10))
    del datasets[4]
    save(datasets, folder)


def _uneven(folder: Path) -> None:
    datasets = make_slices(SeriesSpec(slices=6, slice_step=2.0))
    datasets[3].ImagePositionPatient[2] += 0.6
    save(datasets, folder)


def _duplicate(folder: Path) -> None:
    datasets = make_slices(SeriesSpec(slices=6))
    datasets[3].ImagePositionPatient = list(datasets[2].ImagePositionPatient)
    save(datasets, folder)


def _mixed_orientation(folder: Path) -> None:
    datasets = make_slices(SeriesSpec(slices=6))
    datasets[2].ImageOrientationPatient = [1, 0, 0, 0, 0.995, 0.0998]
    save(datasets, folder)


def _mixed_size(folder: Path) -> None:
    datasets = make_slices(SeriesSpec(slices=5))
    other = make_slices(SeriesSpec(slices=5, rows=10, series_uid=datasets[0].SeriesInstanceUID))
    datasets[1] = other[1]
    save(datasets, folder)


def _mixed_pixel_type(folder: Path) -> None:
    datasets = make_slices(SeriesSpec(slices=5))
    other = make_slices(
        SeriesSpec(
            slices=5,
            bits_allocated=8,
            bits_stored=8,
            signed=False,
            value_range=(0, 255),
            series_uid=datasets[0].SeriesInstanceUID,
        )
    )
    datasets[2] = other[2]
    save(datasets, folder)


def _two_series(folder: Path) -> None:
    write_series(SeriesSpec(description="Abdomen venous"), folder / "a")
    write_series(SeriesSpec(description="Abdomen arterial", slices=4), folder / "b")


def _rgb(folder: Path) -> None:
    folder.mkdir()
    (folder / "rgb.dcm").write_bytes(bundled("examples_rgb_color.dcm").read_bytes())


def _multiframe(folder: Path) -> None:
    folder.mkdir()
    (folder / "dose.dcm").write_bytes(bundled("rtdose.dcm").read_bytes())


def _truncated(folder: Path) -> None:
    paths = write_series(SeriesSpec(slices=5), folder)
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) - 300])


def _garbage_only(folder: Path) -> None:
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")
    (folder / "random.dcm").write_bytes(np.random.default_rng(1).bytes(5000))


def _tilted(folder: Path) -> None:
    datasets = make_slices(SeriesSpec(slices=6, slice_step=2.0))
    for i, ds in enumerate(datasets):
        ds.ImagePositionPatient[1] += 0.5 * i  # the table moved sideways: gantry tilt
    save(datasets, folder)


def _no_positions(folder: Path) -> None:
    datasets = make_slices(SeriesSpec(slices=3))
    for ds in datasets:
        del ds.ImagePositionPatient
    save(datasets, folder)


CASES = {
    "gap": (_gap, [], "slices are missing: a gap of 5 mm", "about 1 missing"),
    "uneven": (_uneven, [], "uneven slice spacing", "steps 2 mm"),
    "duplicate": (_duplicate, [], "are at the same position", "same slice twice"),
    "mixed-orientation": (_mixed_orientation, [], "mixes orientations", "not one volume"),
    "mixed-size": (_mixed_size, [], "mixes image sizes", "24x10"),
    "mixed-pixel-type": (_mixed_pixel_type, [], "mixes pixel types", "8-bit unsigned"),
    "two-series": (_two_series, [], "holds 2 series", "Abdomen arterial"),
    "unknown-series": (
        _two_series,
        ["--series-uid", "1.2.3.4"],
        "series 1.2.3.4 is not in",
        "Abdomen venous",
    ),
    "rgb": (_rgb, [], "is a colour image (RGB", "grayscale series only"),
    "multiframe": (_multiframe, [], "multi-frame image (15 frames)", "single-frame"),
    "truncated": (_truncated, [], "IM0002.dcm is truncated", "re-send"),
    "garbage-only": (_garbage_only, [], "no readable DICOM image", "2 files looked at"),
    "missing-source": (lambda folder: None, [], "does not exist", "check the path"),
    "gantry-tilt": (_tilted, [], "gantry tilt", "without tilt"),
    "no-positions": (_no_positions, [], "no ImagePositionPatient", "secondary capture"),
    "range-absent": (
        lambda f: write_series(SeriesSpec(slices=5), f),
        ["--range", "3:9:1"],
        "not in the series: 6, 7, 8, 9",
        "instance numbers 1..5",
    ),
    "range-malformed": (
        lambda f: write_series(SeriesSpec(slices=5), f),
        ["--range", "1-5"],
        "is not START:END:DELTA",
        "120:1:-1",
    ),
    "range-empty": (
        lambda f: write_series(SeriesSpec(slices=5), f),
        ["--range", "5:1:1"],
        "selects nothing",
        "negative DELTA",
    ),
    "range-turns-back": (
        lambda f: write_series(SeriesSpec(slices=5, instance_numbers=[1, 3, 2, 4, 5]), f),
        ["--range", "1:5:1"],
        "turns back",
        "follow the slice positions",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_refusal(tmp_path, cli, case):
    build, extra, problem, hint = CASES[case]
    source, outdir = tmp_path / "source", tmp_path / "out"
    build(source)
    outdir.mkdir()
    (outdir / "keep.txt").write_text("unrelated")
    done = cli("convert", source, outdir, "--volume-id", "3", *extra)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert problem in lines[0] and hint in lines[0], lines[0]
    assert sorted(p.name for p in outdir.iterdir()) == ["keep.txt"]
    assert done.stdout == ""


def test_undecodable_pixel_data_is_refused_without_leftovers(tmp_path, cli):
    source = tmp_path / "source"
    source.mkdir()
    ds = pydicom.dcmread(bundled("MR_small_jp2klossless.dcm"))
    frame = bytearray(ds.PixelData)
    frame[40:400] = bytes(360)  # wipe the middle of the JPEG 2000 code stream
    ds.PixelData = bytes(frame)
    ds.save_as(source / "broken.dcm")
    done = cli("convert", source, tmp_path / "out")
    assert done.returncode == 1
    assert "cannot decode the pixel data of image" in done.stderr
    assert "JPEG 2000" in done.stderr and "Traceback" not in done.stderr
    assert not list((tmp_path / "out").glob("0.*"))


def test_usage_errors_exit_2(tmp_path, cli):
    assert cli("convert").returncode == 2
    assert cli("convert", tmp_path, tmp_path, "--keep-private", "zz").returncode == 2
    assert cli("convert", tmp_path, tmp_path, "--volume-id", "-1").returncode == 2
