"""collect against a real MinIO: out/ as a hostile plug-in leaves it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubecircus.objectstore.client import connect
from kubecircus.objectstore.policy import collect_policy
from kubecircus.worker import collect
from kubecircus.worker.report import decode, encode

from conftest import KUBECIRCUS
from storetest import BUCKET

NS = "team-c"
POD_UID = 65532
SCHEMA = {"type": "object", "required": ["results"], "properties": {"results": {"type": "object"}}}


@pytest.fixture
def job(mint, minted, store_config):
    """A workspace with an empty out/, owned by the pod user, and the job's collect credentials."""
    base = Path(tempfile.mkdtemp(prefix="collect-"))
    os.chmod(base, 0o755)
    ws = base / "ws"
    (ws / "out").mkdir(parents=True)
    (ws / "manifest.json").write_text(json.dumps({"files": {}, "inputs": [{"id": 0, "fingerprint": "abc"}]}))
    uid = str(uuid.uuid4())
    policy = collect_policy(NS, uid, BUCKET)
    yield Job(ws, uid, mint(policy), minted(policy), store_config)
    shutil.rmtree(base, ignore_errors=True)


@dataclass
class Job:
    ws: Path
    uid: str
    client: object
    credentials: object
    config: object


def _collect(job, **task):
    base = {"namespace": NS, "uid": job.uid, "resultsSchema": SCHEMA, "manifest": {"plugin": {"name": "p"}}}
    return collect.run({**base, **task}, job.client, BUCKET, job.ws)


def _collect_as_pod_user(job, **task):
    """collect as the collect pod runs it, as user 65532 (root would read mode-000 files): in a
    forked child that drops to that user, with a client of its own; the report comes back
    through a pipe."""
    subprocess.run(["chown", "-R", f"{POD_UID}:{POD_UID}", str(job.ws.parent)], check=True)
    base = {"namespace": NS, "uid": job.uid, "resultsSchema": SCHEMA}
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(POD_UID)
                os.setuid(POD_UID)
            client = connect(job.config, job.credentials)
            report = collect.run({**base, **task}, client, BUCKET, job.ws)
            os.write(write, json.dumps([report.exit_code, encode(report)]).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        code, text = json.loads(pipe.read() or b"[70, null]")
    os.waitpid(child, 0)
    return decode("collect", code, text)


def test_the_collect_command_reports_through_its_exit_code_and_termination_message(job, root, tmp_path):
    """``kubecircus worker collect`` as the pod runs it: task and store from the environment,
    credentials from files, the report in the termination message file."""
    (job.ws / "out" / "results.json").write_text('{"results": {}}')
    creds = tmp_path / "creds"
    creds.mkdir()
    for name, value in (
        ("accessKey", job.credentials.access_key),
        ("secretKey", job.credentials.secret_key),
        ("sessionToken", job.credentials.session_token),
    ):
        (creds / name).write_text(value)
    termination = tmp_path / "termination-log"
    env = {
        "PATH": os.environ["PATH"],
        "KUBECIRCUS_TASK": json.dumps({"namespace": NS, "uid": job.uid}),
        "KUBECIRCUS_WORKSPACE": str(job.ws),
        "KUBECIRCUS_CREDENTIALS": str(creds),
        "KUBECIRCUS_TERMINATION_LOG": str(termination),
        "KUBECIRCUS_STORE_ENDPOINT": job.config.endpoint,
        "KUBECIRCUS_STORE_BUCKET": BUCKET,
    }

    def collect_command() -> subprocess.CompletedProcess[str]:
        command = [str(KUBECIRCUS), "worker", "collect"]
        return subprocess.run(
            command, env=env, capture_output=True, text=True, encoding="utf-8", timeout=120, check=False
        )

    done = collect_command()
    assert done.returncode == 0, done.stdout + done.stderr
    report = decode("collect", done.returncode, termination.read_text())
    assert report.ok and report.details["files"] == 1
    assert "Done: 1 files" in done.stdout
    assert f"jobs/{NS}/{job.uid}/out/results.json" in _keys(root, job.uid)
    (job.ws / "out" / "results.json").unlink()
    done = collect_command()
    assert done.returncode == 8 and decode("collect", 8, termination.read_text()).reason == "ResultsMissing"


def _keys(root, uid) -> list[str]:
    return sorted(
        o.object_name
        for o in root.list_objects(bucket_name=BUCKET, prefix=f"jobs/{NS}/{uid}/", recursive=True)
    )


def test_outputs_and_a_manifest_are_uploaded(job, root):
    ws, uid = job.ws, job.uid
    out = ws / "out"
    (out / "results.json").write_text('{"results": {"lesionCandidates": []}}')
    (out / "viz").mkdir()
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(5000)
    (out / "viz" / "slice 1.png").write_bytes(png)
    (out / "report.pdf").write_bytes(b"%PDF-1.4")
    report = _collect(job)
    assert report.ok, report
    assert report.details["files"] == 3 and report.details["resultsBytes"] == 37
    prefix = f"jobs/{NS}/{uid}/"
    assert _keys(root, uid) == [
        prefix + k for k in ("manifest.json", "out/report.pdf", "out/results.json", "out/viz/slice 1.png")
    ]
    stored = root.get_object(bucket_name=BUCKET, object_name=prefix + "out/viz/slice 1.png")
    assert stored.read() == png and stored.headers["Content-Type"] == "image/png"
    manifest = json.loads(root.get_object(bucket_name=BUCKET, object_name=prefix + "manifest.json").read())
    entries = {o["name"]: o for o in manifest["outputs"]}
    assert entries["viz/slice 1.png"] == {
        "name": "viz/slice 1.png",
        "size": len(png),
        "sha256": hashlib.sha256(png).hexdigest(),
        "contentType": "image/png",
    }
    assert entries["report.pdf"]["contentType"] == "application/pdf"
    assert (
        report.details["manifestSha256"]
        == hashlib.sha256(
            root.get_object(bucket_name=BUCKET, object_name=prefix + "manifest.json").read()
        ).hexdigest()
    )
    assert manifest["inputs"] == [{"id": 0, "fingerprint": "abc"}] and manifest["plugin"] == {"name": "p"}
    assert manifest["fileCount"] == 3 and manifest["log"] == "plugin-log.txt"


def _hostile(out: Path, kind: str) -> None:
    (out / "results.json").write_text('{"results": {}}')
    if kind == "symlinked-results":
        (out / "results.json").unlink()
        (out / "results.json").symlink_to("/proc/self/environ")
    elif kind == "symlink-to-credentials":
        (out / "creds").symlink_to("/var/run/kubecircus/store/secretKey")
    elif kind == "symlinked-folder":
        (out / "dir").symlink_to("/etc")
    elif kind == "fifo":
        os.mkfifo(out / "pipe")
    elif kind == "unreadable":
        (out / "locked.bin").write_bytes(b"x")
        os.chmod(out / "locked.bin", 0)
    elif kind == "unreadable-folder":
        (out / "sub").mkdir()
        (out / "sub" / "a").write_text("a")
        os.chmod(out / "sub", 0)
    elif kind == "newline-name":
        (out / "evil\nFILE 0 0 results.json").write_text("x")
    elif kind == "not-utf8-name":
        os.close(os.open(os.fsencode(out) + b"/bad\xff.txt", os.O_WRONLY | os.O_CREAT, 0o644))
    elif kind == "dot-name":
        (out / " ..").write_text("MinIO refuses such keys")
    elif kind == "deep":
        deep = out
        for _ in range(40):
            deep = deep / "d"
        deep.mkdir(parents=True)


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("symlinked-results", "results.json is a symbolic link"),
        ("symlink-to-credentials", "out/creds is a symbolic link"),
        ("symlinked-folder", "out/dir is a symbolic link"),
        ("fifo", "out/pipe is a FIFO"),
        ("unreadable", "out/locked.bin cannot be read (mode 000)"),
        ("unreadable-folder", "out/sub cannot be read"),
        ("newline-name", "control characters"),
        ("not-utf8-name", "not valid UTF-8"),
        ("deep", "nest deeper than 32"),
        ("dot-name", "'.' and '..' are not usable names"),
    ],
)
def test_hostile_outputs_are_refused_and_nothing_is_uploaded(job, root, kind, words):
    """Run as the collect pod runs (user 65532: as root, file modes would not bar reading)."""
    _hostile(job.ws / "out", kind)
    report = _collect_as_pod_user(job)
    assert (report.reason, words in report.message) == ("OutputInvalid", True), report
    assert _keys(root, job.uid) == []


@pytest.mark.parametrize(
    ("make", "task", "words"),
    [
        (
            lambda out: [(out / f"f{i}").write_text("x") for i in range(60)],
            {"maxFiles": 50},
            "more than 50 files",
        ),
        (
            lambda out: os.truncate(out / "results.json", 0) or _sparse(out / "huge.bin", 1 << 40),
            {},
            "more than",
        ),
    ],
)
def test_output_bombs_are_too_large_and_nothing_is_read(job, root, make, task, words):
    ws, uid = job.ws, job.uid
    (ws / "out" / "results.json").write_text('{"results": {}}')
    make(ws / "out")
    report = _collect(job, **task)
    assert report.reason == "OutputTooLarge" and words in report.message
    assert _keys(root, uid) == []


def _sparse(path: Path, size: int) -> None:
    with path.open("wb") as f:
        f.truncate(size)


@pytest.mark.parametrize(
    ("content", "reason", "words"),
    [
        (None, "ResultsMissing", "no /circus/out/results.json"),
        (b'{"results": [', "ResultsInvalid", "not JSON"),
        (b"\xff\xfe{}", "ResultsInvalid", "not UTF-8"),
        (b'{"results": NaN}', "ResultsInvalid", "not JSON"),
        (b'{"results": "not-an-object"}', "ResultsInvalid", "schema at results"),
        (b'{"other": 1}', "ResultsInvalid", "'results' is a required property"),
        (b"[" * 100_000 + b"]" * 100_000, "ResultsInvalid", "nests deeper"),
    ],
)
def test_results_json_is_checked(job, root, content, reason, words):
    ws, uid = job.ws, job.uid
    if content is not None:
        (ws / "out" / "results.json").write_bytes(content)
    report = _collect(job)
    assert report.reason == reason and words in report.message, report
    assert _keys(root, uid) == []


def test_a_huge_value_in_a_schema_error_gives_a_bounded_message(job):
    ws = job.ws
    (ws / "out" / "results.json").write_text(json.dumps({"results": "x" * 100_000}))
    report = _collect(job)
    assert report.reason == "ResultsInvalid" and len(report.message) <= 400


def test_results_json_above_its_cap_is_refused(job):
    ws = job.ws
    (ws / "out" / "results.json").write_text(json.dumps({"results": {"v": "x" * 2000}}))
    report = _collect(job, maxResultsBytes=1000)
    assert report.reason == "ResultsInvalid" and "at most 1000" in report.message


@pytest.mark.parametrize(
    ("name", "stored_as"),
    [
        ("page.html", "application/octet-stream"),
        ("x.svg", "application/octet-stream"),
        ("a.json", "application/json"),
    ],
)
def test_outputs_a_browser_would_run_are_stored_as_plain_bytes(name, stored_as):
    assert collect.content_type(name) == stored_as
