"""The tag dump N.json: format, common/unique split, order, and no patient identity anywhere."""

from __future__ import annotations

import json
import re

import numpy as np
import pydicom
import pytest

from kubecircus.converter import convert, plan_from_headers, read_header, write_volume
from kubecircus.converter.dump import for_private
from kubecircus.converter.tags import (
    IDENTIFYING_TAGS,
    PATIENT_GROUP_KEPT,
    _kept_vr,
    charset_of,
    containers,
    identities,
    identity,
    tag_key,
)

from dicomfactory import IDENTIFYING_VALUES, SeriesSpec, bundled, fill_identifying, make_slices, save


def _convert_with(tmp_path, datasets, *args, **kwargs):
    save(datasets, tmp_path / "in")
    return convert(tmp_path / "in", tmp_path / "out", *args, **kwargs)


def test_format_common_and_unique_in_written_order(tmp_path):
    spec = SeriesSpec(slices=6)
    result = _convert_with(tmp_path, make_slices(spec))
    dump = json.loads(result.json.read_text("utf-8"))
    assert set(dump) == {"common", "unique"}
    assert len(dump["unique"]) == result.size[2] == 6
    keys = list(dump["common"]) + [k for item in dump["unique"] for k in item]
    assert all(re.fullmatch(r"[0-9a-f]{4},[0-9a-f]{4}", k) for k in keys)
    assert dump["common"]["0008,0060"] == "CT"
    assert dump["common"]["0002,0010"] == "1.2.840.10008.1.2.1"
    # Multiple values joined by a backslash, each as the file spells it.
    assert dump["common"]["0020,0037"] == "1.0\\0.0\\0.0\\0.0\\1.0\\0.0"
    assert all(isinstance(v, str) for v in dump["common"].values())
    # Written order is larger z first: instance numbers 6..1, positions matching the raw slices.
    assert [item["0020,0013"] for item in dump["unique"]] == ["6", "5", "4", "3", "2", "1"]
    zs = [float(item["0020,0032"].split("\\")[2]) for item in dump["unique"]]
    assert zs == sorted(zs, reverse=True)
    assert "7fe0,0010" not in dump["common"] and "0020,0013" not in dump["common"]


def test_unique_follows_a_range_order(tmp_path):
    result = _convert_with(tmp_path, make_slices(SeriesSpec(slices=8)), slice_range="2:8:3")
    dump = json.loads(result.json.read_text("utf-8"))
    assert [item["0020,0013"] for item in dump["unique"]] == ["2", "5", "8"]


def test_no_identifying_tag_or_value_reaches_the_json(tmp_path):
    datasets = make_slices(SeriesSpec(slices=3))
    for ds in datasets:
        fill_identifying(ds)
    save(datasets, tmp_path / "in")
    # The values are really in the input files...
    raw_input = b"".join(p.read_bytes() for p in (tmp_path / "in").iterdir())
    assert all(v.encode() in raw_input for v in IDENTIFYING_VALUES.values())
    result = convert(tmp_path / "in", tmp_path / "out")
    text = result.json.read_text("utf-8")
    # ...and none of them, nor their tags, is in the dump, not even inside sequences.
    leaked = [v for v in IDENTIFYING_VALUES.values() if v in text]
    leaked += [
        s
        for s in (
            "Hidden^Person",
            "Nested^Referrer",
            "NESTED-MRN",
            "Deep^Nested",
            "INST-CODE-314",
            "REQPROC-7781",
            "PRIVATE-SECRET",
        )
        if s in text
    ]
    assert leaked == []
    keys = set(re.findall(r'"([0-9a-f]{4},[0-9a-f]{4})"', text))
    assert not {tag_key(t) for t in IDENTIFYING_TAGS} & keys
    assert not {k for k in keys if k.startswith("0010,")} - {tag_key(t) for t in PATIENT_GROUP_KEPT}
    # Harmless sequences survive with their harmless content.
    dump = json.loads(text)
    refs = dump["unique"][0]["0008,1140"]
    assert isinstance(refs, list) and refs[0]["0008,1150"] == "1.2.840.10008.5.1.4.1.1.2"
    assert "0010,0010" not in json.dumps(refs)


def test_clinical_patient_facts_are_kept(tmp_path):
    datasets = make_slices(SeriesSpec(slices=2))
    for ds in datasets:
        ds.PatientSex, ds.PatientAge, ds.PatientWeight = "F", "071Y", 62.5
    result = _convert_with(tmp_path, datasets)
    common = json.loads(result.json.read_text("utf-8"))["common"]
    assert (common["0010,0040"], common["0010,1010"], common["0010,1030"]) == ("F", "071Y", "62.5")


def test_private_tags_only_when_asked(tmp_path):
    datasets = make_slices(SeriesSpec(slices=2))
    for ds in datasets:
        block = ds.private_block(0x0019, "ACME 1.0", create=True)
        block.add_new(0x10, "LO", "kernel B30f")
        block.add_new(0x11, "LO", "other")
    save(datasets, tmp_path / "in")
    plain = convert(tmp_path / "in", tmp_path / "plain")
    assert "kernel B30f" not in plain.json.read_text()
    kept = convert(tmp_path / "in", tmp_path / "kept", keep_private={0x00191010})
    common = json.loads(kept.json.read_text())["common"]
    assert common["0019,1010"] == "kernel B30f" and "0019,1011" not in common


def test_binary_values_are_dropped(tmp_path):
    datasets = make_slices(SeriesSpec(slices=2))
    for ds in datasets:
        ds.add_new(0x00291010, "OB", b"\x00\x01")  # private binary
        ds.add_new(0x60003000, "OW", np.zeros(8, np.uint16).tobytes())  # overlay data
        ds.add_new(0x60000010, "US", 4)
    result = _convert_with(tmp_path, datasets)
    common = json.loads(result.json.read_text())["common"]
    assert "6000,3000" not in common and common["6000,0010"] == "4"


def test_character_sets_are_decoded(tmp_path):
    datasets = make_slices(SeriesSpec(slices=2))
    for ds in datasets:
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SeriesDescription = "Thorax nativ Übersicht"
    result = _convert_with(tmp_path, datasets)
    assert json.loads(result.json.read_text("utf-8"))["common"]["0008,103e"] == "Thorax nativ Übersicht"
    assert pydicom.dcmread(next((tmp_path / "in").iterdir())).SeriesDescription == "Thorax nativ Übersicht"


def _private_series(folder, slices=4):
    datasets = make_slices(SeriesSpec(slices=slices))
    for ds in datasets:
        fill_identifying(ds)
        block = ds.private_block(0x0019, "ACME 1.0", create=True)
        block.add_new(0x10, "LO", "kernel B30f")
        block.add_new(0x11, "LO", "other")
    save(datasets, folder)


def test_headers_read_without_keep_private_still_dump_kept_tags(tmp_path):
    """``read_header`` summarises the tags for the dump; a plan keeping more private tags than
    the headers were read for looks the extra ones up in the datasets, with the same result."""
    _private_series(tmp_path / "in")
    kept = {0x00191010}
    headers = [h for p in sorted((tmp_path / "in").iterdir()) if (h := read_header(p)) is not None]
    late = write_volume(plan_from_headers(headers, keep_private=kept), tmp_path / "late")
    direct = convert(tmp_path / "in", tmp_path / "direct", keep_private=kept)
    assert late.json.read_bytes() == direct.json.read_bytes()
    assert json.loads(late.json.read_text())["common"]["0019,1010"] == "kernel B30f"
    with pytest.raises(ValueError, match="read them again"):
        for_private(headers[0].tags, None, frozenset(kept))


def test_the_first_slice_spacing_read_keeps_its_tag_unique(tmp_path):
    """The z spacing is read from the first slice before the dump compares identities, which
    has always made SliceThickness (or SpacingBetweenSlices) a per-slice tag; kept as it was."""
    save(make_slices(SeriesSpec(slices=3)), tmp_path / "thickness")
    dump = json.loads(convert(tmp_path / "thickness", tmp_path / "a").json.read_text())
    assert "0018,0050" not in dump["common"] and all(u["0018,0050"] == "2.5" for u in dump["unique"])
    datasets = make_slices(SeriesSpec(slices=3))
    for ds in datasets:
        ds.SpacingBetweenSlices = 2.5
    save(datasets, tmp_path / "spacing")
    dump = json.loads(convert(tmp_path / "spacing", tmp_path / "b").json.read_text())
    assert "0018,0088" not in dump["common"] and dump["common"]["0018,0050"] == "2.5"


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm"]
)
def test_walking_the_elements_applies_the_per_tag_rules(name):
    """``kept_elements`` walks ``Dataset.items()`` for speed; it must keep, and identify, exactly
    what looking each tag up with ``_kept_vr`` and ``identity`` does (implicit VR included)."""
    by_rules = pydicom.dcmread(bundled(name), defer_size=4096)
    walked = pydicom.dcmread(bundled(name), defer_size=4096)
    charset = charset_of(by_rules)
    expected = {}
    for container in containers(by_rules):
        for key in list(container.keys()):
            vr = _kept_vr(container, int(key), frozenset({0x00431028}))
            if vr is not None:
                expected[int(key)] = identity(container, int(key), vr, charset)
    assert expected and identities(walked, frozenset({0x00431028})) == expected
