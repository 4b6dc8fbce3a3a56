"""The ``kubecircus convert`` command as a user runs it."""

from __future__ import annotations

import json

from dicomfactory import SeriesSpec, make_slices, save, write_series


def test_convert_writes_the_three_files_and_exits_0(tmp_path, cli):
    spec = SeriesSpec(slices=4)
    write_series(spec, tmp_path / "in" / "deep" / "er")
    (tmp_path / "in" / "README.txt").write_text("ignored")
    (tmp_path / "in" / "DICOMDIR").write_bytes(b"")  # an empty DICOMDIR is just ignored
    done = cli("convert", tmp_path / "in", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.json", "0.mhd", "0.raw"]
    assert "24x20x4 MET_SHORT" in done.stdout and done.stderr == ""


def test_volume_id_series_uid_and_json_output(tmp_path, cli):
    first, second = SeriesSpec(slices=3), SeriesSpec(slices=5, description="second")
    write_series(first, tmp_path / "in" / "a")
    write_series(second, tmp_path / "in" / "b")
    done = cli(
        "convert",
        tmp_path / "in",
        tmp_path / "out",
        "--volume-id",
        "1",
        "--series-uid",
        second.series_uid,
        "--range",
        "5:1:-2",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["series_uid"] == second.series_uid and report["size"] == [24, 20, 3]
    assert report["mhd"].endswith("/1.mhd") and (tmp_path / "out" / "1.raw").exists()


def test_dicomdir_is_ignored(tmp_path, cli):
    from pydicom.fileset import FileSet

    datasets = make_slices(SeriesSpec(slices=3))
    for ds in datasets:  # what the DICOMDIR's patient and study records need
        ds.PatientID, ds.StudyTime, ds.StudyID = "ANON", "101010", "1"
    save(datasets, tmp_path / "in")
    fs = FileSet()
    for path in sorted((tmp_path / "in").iterdir()):
        fs.add(path)
    fs.write(tmp_path / "media")  # writes DICOMDIR plus copies of the images
    assert (tmp_path / "media" / "DICOMDIR").exists()
    done = cli("convert", tmp_path / "media", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert "x3 MET_SHORT" in done.stdout


def test_version(cli):
    done = cli("--version")
    assert done.returncode == 0 and done.stdout.startswith("kubecircus ")
