"""What is uploaded from a folder, and where downloaded keys may land."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubecircus.client.errors import ClientError
from kubecircus.client.transfer import download_target, folder_files, object_keys

PREFIX = "jobs/ns/uid/"


def test_nested_keys_land_below_the_folder(tmp_path):
    assert (
        download_target(tmp_path, PREFIX, PREFIX + "out/viz/slice.png")
        == tmp_path / "out" / "viz" / "slice.png"
    )
    assert download_target(tmp_path, PREFIX, PREFIX + "manifest.json") == tmp_path / "manifest.json"


@pytest.mark.parametrize(
    "rest",
    [
        "out/.git/config",
        "out/.envrc",
        ".git/HEAD",
        "out/viz/.vscode/tasks.json",
        "out/..hidden",
        "out/a\x1b]52;c;x",
    ],
)
def test_hidden_and_control_character_names_are_never_downloaded(tmp_path, rest):
    """A plug-in's out/.git/config with core.fsmonitor would run a command at the next git status."""
    with pytest.raises(ClientError, match="hidden or control-character names") as refused:
        download_target(tmp_path, PREFIX, PREFIX + rest)
    assert "\x1b" not in refused.value.message  # the refusal itself is printable


def test_downloads_go_only_into_a_new_or_empty_folder(tmp_path):
    from kubecircus.client.transfer import download_all

    (tmp_path / "mine.txt").write_text("the user's own file")
    with pytest.raises(ClientError, match="not a new or empty folder"):
        download_all(None, "b", PREFIX, tmp_path, None)  # refused before the store is asked


def test_terminal_control_sequences_are_shown_never_sent():
    from kubecircus.client.errors import one_line, printable

    hostile = "done\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07 \x1b[2J\u202eexe.txt\x9b"
    shown = printable(hostile)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in shown)
    assert "\u202e" not in shown and "\\x1b]52;c;" in shown
    assert printable("line one\nline\ttwo") == "line one\nline\ttwo"
    assert one_line("a\nb\x1bc") == "a b\\x1bc"


@pytest.mark.parametrize(
    "rest",
    [
        "../escape",
        "out/../../escape",
        "/etc/passwd",
        "//etc/passwd",
        "out//x",
        "./x",
        "out/.",
        "",
        "out\\..\\..\\x",
        "C:/Windows/x",
        "x\x00y",
    ],
)
def test_keys_that_would_escape_are_refused(tmp_path, rest):
    with pytest.raises(ClientError, match="refusing to download"):
        download_target(tmp_path, PREFIX, PREFIX + rest)


def test_a_key_outside_the_prefix_is_refused(tmp_path):
    with pytest.raises(ClientError, match="refusing"):
        download_target(tmp_path, PREFIX, "jobs/ns/other/x")


def test_a_symlink_inside_the_folder_that_leads_out_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(outside, target / "out")
    with pytest.raises(ClientError, match="refusing"):
        download_target(target, PREFIX, PREFIX + "out/x")


def test_every_visible_file_is_uploaded_under_its_relative_path(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ["1.dcm", "a/2", "a/b/3.dcm", ".hidden", "a/.DS_Store"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x").write_bytes(b"x")
    files = folder_files(tmp_path)
    assert [k for _, k in object_keys(tmp_path, files, "ns/j/")] == [
        "ns/j/1.dcm",
        "ns/j/a/2",
        "ns/j/a/b/3.dcm",
    ]


def test_a_file_is_not_a_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ClientError, match="is not a folder"):
        folder_files(tmp_path / "f")
    with pytest.raises(ClientError, match="no such folder"):
        folder_files(Path(tmp_path / "missing"))


def test_retries_ride_out_an_outage_and_stop_when_another_transfer_failed():
    import threading

    import urllib3

    from kubecircus.client.transfer import Stopped, with_retries

    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise urllib3.exceptions.ProtocolError("connection reset")
        return "ok"

    stop = threading.Event()
    assert with_retries(flaky, stop, budget=10) == "ok" and len(calls) == 3
    with pytest.raises(ValueError):  # not an outage: at once
        with_retries(lambda: (_ for _ in ()).throw(ValueError("bad")), stop)
    stop.set()
    with pytest.raises(Stopped):
        with_retries(flaky, stop)


def test_downloads_are_checked_against_the_manifest():
    from kubecircus.client.transfer import manifest_mismatches

    manifest = {"outputs": [{"name": "results.json", "sha256": "aa"}, {"name": "viz/a.png", "sha256": "bb"}]}
    digests = {"out/results.json": "aa", "out/viz/a.png": "bb", "manifest.json": "mm", "plugin-log.txt": "ll"}
    assert manifest_mismatches(manifest, digests, "mm", "mm") == []
    assert manifest_mismatches(manifest, digests, "mm", None) == [
        "manifest.json (the job recorded no sha256 for it)"
    ]
    assert manifest_mismatches(manifest, {**digests, "out/planted.sh": "pp"}, "mm", "mm") == [
        "out/planted.sh (not in the manifest)"
    ]
    assert manifest_mismatches(["not", "a", "dict"], digests, "mm", "mm") == [
        "manifest.json (no list of outputs)"
    ]
    assert manifest_mismatches(manifest, {**digests, "out/viz/a.png": "xx"}, "mm", "mm") == [
        "out/viz/a.png (sha256 differs)"
    ]
    assert manifest_mismatches(manifest, {"out/results.json": "aa"}, "zz", "mm") == [
        "manifest.json (not the one the job recorded)",
        "out/viz/a.png (missing)",
    ]


def test_the_commands_stdout_shows_control_characters_instead_of_sending_them():
    import io

    from kubecircus.client.commands import PrintableText

    raw = io.StringIO()
    PrintableText(raw).write("job j1 \x1b[2J Failed\n")
    assert raw.getvalue() == "job j1 \\x1b[2J Failed\n"
