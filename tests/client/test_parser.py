"""The client's arguments, as the kubecircus parser reads them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kubecircus.cli import _parser, main

ROOT = Path(__file__).resolve().parents[2]


def parse(*argv: str):
    return _parser().parse_args(list(argv))


def test_submit_takes_the_folder_the_plugin_and_the_selection():
    args = parse(
        "submit", "series/", "--plugin", "lesions", "--series-uid", "1.2.840.1", "--range", "40:1:-2",
        "--priority", "5", "-n", "radiology-a", "--wait", "--name", "ct.1",
    )  # fmt: skip
    assert (args.command, args.folder, args.plugin) == ("submit", "series/", "lesions")
    assert (args.series_uid, args.slice_range, args.priority) == ("1.2.840.1", "40:1:-2", 5)
    assert (args.namespace, args.wait, args.name, args.bucket) == ("radiology-a", True, "ct.1", "dicom")
    assert (args.store, args.store_credentials, args.system_namespace) == (None, None, "kubecircus-system")


def test_defaults_leave_namespace_priority_and_name_to_the_cluster_and_the_clock():
    args = parse("submit", "s", "--plugin", "p")
    assert (args.namespace, args.priority, args.name, args.wait, args.series_uid) == (
        None,
        None,
        None,
        False,
        None,
    )


@pytest.mark.parametrize(
    "extra",
    [
        ["--range", "1:2:0"],
        ["--range", "1-40"],
        ["--series-uid", "1.2.a"],
        ["--priority", "1001"],
        ["--priority", "high"],
        ["--name", "Bad_Name"],
        ["--name", "-x"],
    ],
)
def test_bad_values_are_usage_errors(extra, capsys):
    with pytest.raises(SystemExit) as done:
        parse("submit", "s", "--plugin", "p", *extra)
    assert done.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_a_submit_without_plugin_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as done:
        parse("submit", "s")
    assert done.value.code == 2


@pytest.mark.parametrize("command", ["status", "logs", "results", "cancel"])
def test_every_command_takes_namespace_kubeconfig_and_context(command):
    job = [] if command == "status" else ["j"]
    args = parse(command, *job, "--namespace", "ns", "--kubeconfig", "k", "--context", "c")
    assert (args.namespace, args.kubeconfig, args.context) == ("ns", "k", "c")


def test_status_job_is_optional_and_the_others_need_one():
    assert parse("status").job is None and parse("status", "j").job == "j"
    assert parse("results", "j", "--download", "out").download == "out"
    assert parse("logs", "j", "-f").follow and parse("cancel", "j", "--wait").wait
    with pytest.raises(SystemExit):
        parse("logs")


def test_an_empty_folder_fails_with_one_line_before_any_cluster_is_asked(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))  # would fail differently if reached
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / ".DS_Store").write_text("x")  # hidden files do not count
    assert main(["submit", str(tmp_path / "empty"), "--plugin", "p"]) == 1
    err = capsys.readouterr().err
    assert err == f"kubecircus: {tmp_path / 'empty'} holds no files: nothing to submit\n"


def test_a_missing_kubeconfig_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nowhere"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main(["status"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kubecircus: no kubeconfig: ") and err.count("\n") == 1


def test_the_parser_loads_no_client_library():
    """cli.py builds every parser, also for ``kubecircus worker`` in the worker image."""
    code = "import sys, kubecircus.cli\nprint(' '.join(sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8", check=True, cwd=ROOT
    )
    loaded = {name.split(".")[0] for name in done.stdout.split()}
    assert not loaded & {"rich", "kubernetes", "minio", "pydantic", "urllib3"}, loaded


def test_the_client_needs_only_its_extra():
    """The commands run with kubecircus[client]: no operator, converter or worker libraries."""
    modules = ["kubecircus.client.commands", "kubecircus.client.follow", "kubecircus.operator.builders"]
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print(' '.join(sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8", check=True, cwd=ROOT
    )
    loaded = {name.split(".")[0] for name in done.stdout.split()}
    assert not loaded & {"kopf", "prometheus_client", "pydicom", "numpy", "jsonschema"}, loaded
    assert {"rich", "kubernetes", "minio", "pydantic"} <= loaded
