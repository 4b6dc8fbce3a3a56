"""prepare: the workspace check and the isolation proof, against real sockets on loopback."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from kubecircus.worker import isolation, prepare
from kubecircus.worker.workspace import reset_workspace, write_manifest


@pytest.fixture
def workspace(tmp_path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    reset_workspace(ws)
    (ws / "in" / "0.raw").write_bytes(os.urandom(4096))
    (ws / "in" / "0.mhd").write_text("ElementDataFile = 0.raw\n")
    write_manifest(ws, [{"id": 0}])
    return ws


@pytest.fixture
def listener():
    """A listening TCP port on loopback: a door that is open."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"127.0.0.1:{server.getsockname()[1]}"


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed: refused


def _task(*addresses: str, wait: float = 1.0) -> dict:
    return {
        "probes": [{"name": f"t{i}", "address": a} for i, a in enumerate(addresses)],
        "probeTimeoutSeconds": 0.3,
        "isolationWaitSeconds": wait,
    }


NO_ENV: dict[str, str] = {}


def test_a_clean_workspace_and_closed_doors_pass_and_out_is_emptied(workspace, monkeypatch):
    monkeypatch.setattr(isolation, "resolv_conf", lambda: "")
    out = workspace / "out"
    (out / "old").mkdir()
    (out / "old" / "locked").mkdir()
    (out / "old" / "locked" / "f").write_text("previous attempt")
    os.chmod(out / "old" / "locked", 0)
    (out / "link").symlink_to(workspace / "in")  # removed, never followed
    os.chmod(out, 0)
    report = prepare.run(_task(_closed_port()), workspace, NO_ENV)
    assert report.ok, report
    assert list(out.iterdir()) == [] and (workspace / "in" / "0.raw").exists()


@pytest.mark.parametrize(
    ("tamper", "words"),
    [
        (lambda ws: (ws / "in" / "0.raw").write_bytes(os.urandom(4096)), "0.raw does not match its sha256"),
        (lambda ws: (ws / "in" / "0.raw").write_bytes(b"short"), "has 5 bytes"),
        (lambda ws: (ws / "in" / "0.mhd").unlink(), "in/0.mhd is missing"),
        (lambda ws: (ws / "in" / "9.mhd").write_text("x"), "in/9.mhd is not in the staging manifest"),
        (lambda ws: (ws / "manifest.json").unlink(), "no readable staging manifest"),
    ],
)
def test_a_workspace_that_differs_from_the_manifest_is_refused(workspace, monkeypatch, tamper, words):
    monkeypatch.setattr(isolation, "resolv_conf", lambda: "")
    tamper(workspace)
    report = prepare.run(_task(_closed_port()), workspace, NO_ENV)
    assert report.reason == "WorkspaceInvalid" and words in report.message


def test_an_open_door_is_a_breach_naming_it(workspace, monkeypatch, listener):
    monkeypatch.setattr(isolation, "resolv_conf", lambda: "")
    report = prepare.run(_task(_closed_port(), listener), workspace, NO_ENV)
    assert report.reason == "IsolationBreach" and f"t1 {listener}: open: connected" in report.message
    assert report.details["rounds"] >= 2  # it waited for the door to close before giving up


def test_a_door_that_closes_late_has_the_attempt_retried_in_a_new_pod(workspace, monkeypatch):
    """The enforcer caught up, but connections made before it may live on in conntrack."""
    monkeypatch.setattr(isolation, "resolv_conf", lambda: "")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    address = f"127.0.0.1:{server.getsockname()[1]}"
    threading.Timer(0.8, server.close).start()  # the enforcer catching up
    report = prepare.run(_task(address, wait=5), workspace, NO_ENV)
    assert report.reason == "Error" and "retried in a new pod" in report.message, report
    assert f"{address}: open: connected (at 0.0 s)" in report.message
    assert report.details["rounds"] >= 2


def test_the_settle_time_counts_closed_rounds_in_a_row(monkeypatch):
    """Closed, then open, then closed: the proof waits a full settle after the last open round."""
    rounds = iter(["closed", "closed", "open: connected"] + ["closed"] * 50)
    monkeypatch.setattr(isolation, "try_door", lambda target, timeout: next(rounds))
    door = isolation.Target("d", "127.0.0.1", 1)
    started = time.monotonic()
    proof = isolation.prove([door], 0.1, 5, settle=0.5)
    assert proof.isolated and len(proof.opened) == 1
    assert proof.opened[0].startswith("d 127.0.0.1:1: open: connected (at 0.")
    assert proof.rounds >= 5  # at least 0.5 s of closed rounds (0.1 s apart) after the open one
    assert time.monotonic() - started >= 0.5


def test_any_dns_answer_is_a_breach_even_an_error(workspace, monkeypatch):
    """A DNS server on loopback that answers every query with REFUSED."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    def answer():
        while True:
            try:
                data, peer = sock.recvfrom(512)
            except OSError:
                return
            sock.sendto(data[:2] + b"\x81\x05" + data[4:], peer)  # QR, RCODE=REFUSED

    threading.Thread(target=answer, daemon=True).start()
    monkeypatch.setattr(isolation, "resolv_conf", lambda: "nameserver 127.0.0.1\n")
    doors = [isolation.Target("dns", "127.0.0.1", port, udp_dns=True)]
    proof = isolation.prove(doors, 0.3, 0.5)
    sock.close()
    assert not proof.isolated and "DNS answer" in proof.open_doors[0]


def test_dns_servers_come_from_resolv_conf_and_no_domain_is_assumed():
    doors = isolation.targets([], {}, "search team.svc.example\nnameserver 10.96.0.10\nnameserver fd00::a\n")
    assert [str(d) for d in doors] == [
        "dns 10.96.0.10:53/udp",
        "dns 10.96.0.10:53",
        "dns [fd00::a]:53/udp",
        "dns [fd00::a]:53",
    ]
    assert b"cluster" not in isolation.dns_query()


def test_the_api_server_and_kubelet_come_from_the_pod_environment():
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443", "HOST_IP": "10.87.0.1"}
    doors = isolation.targets([{"name": "store", "address": "10.96.3.3:9000"}], env, "")
    assert [str(d) for d in doors] == [
        "store 10.96.3.3:9000",
        "api-server 10.96.0.1:443",
        "kubelet 10.87.0.1:10250",
    ]


def test_a_probe_that_cannot_run_counts_as_open():
    outcome = isolation.try_door(isolation.Target("weird", "not an address", 1), 0.2)
    assert outcome.startswith("open: could not probe")
    assert not isolation.prove([], 0.2, 0.2).isolated  # nothing to probe proves nothing


def test_all_doors_are_tried_at_once_in_one_round_when_closed():
    doors = [isolation.Target(f"t{i}", "127.0.0.1", int(_closed_port().split(":")[1])) for i in range(8)]
    proof = isolation.prove(doors, 0.5, 5)
    assert proof.isolated and proof.rounds == 1 and proof.tried == 8


def test_a_tree_thousands_deep_left_in_out_is_emptied(workspace, monkeypatch):
    monkeypatch.setattr(isolation, "resolv_conf", lambda: "")
    fd = os.open(workspace / "out", os.O_RDONLY)
    fds = [fd]
    for _ in range(1500):  # deeper than Python's recursion limit
        os.mkdir("d", dir_fd=fds[-1])
        fds.append(os.open("d", os.O_RDONLY, dir_fd=fds[-1]))
    for descriptor in fds:
        os.close(descriptor)
    report = prepare.run(_task(_closed_port()), workspace, NO_ENV)
    assert report.ok, report
    assert list((workspace / "out").iterdir()) == []


def test_a_door_that_opens_after_a_while_is_caught_within_the_settle_time(workspace, monkeypatch):
    """A fail-closed enforcer: the new pod is shut off at first, then an allow policy applies."""
    monkeypatch.setattr(isolation, "resolv_conf", lambda: "")
    port = int(_closed_port().split(":")[1])
    server = socket.socket()

    def open_later():
        server.bind(("127.0.0.1", port))
        server.listen(16)

    timer = threading.Timer(0.7, open_later)
    timer.start()
    task = {**_task(f"127.0.0.1:{port}", wait=1.5), "isolationSettleSeconds": 1.5}
    report = prepare.run(task, workspace, NO_ENV)
    timer.join()
    server.close()
    assert report.reason == "IsolationBreach" and "open: connected" in report.message
    assert report.details["rounds"] >= 3


# --- an early plug-in pod: waiting for staging, one start per attempt ---------------------------


def test_an_early_pod_waits_for_its_own_attempts_manifest(workspace, monkeypatch):
    monkeypatch.setattr(isolation, "resolv_conf", lambda: "")
    write_manifest(workspace, [{"id": 0}], attempt=0)  # a previous attempt's staging
    task = {**_task(_closed_port()), "attempt": 1, "awaitStagingSeconds": 30}

    def stage_finishes():
        time.sleep(1.0)
        write_manifest(workspace, [{"id": 0}], attempt=1)

    writer = threading.Thread(target=stage_finishes)
    started = time.monotonic()
    writer.start()
    report = prepare.run(task, workspace, NO_ENV)
    writer.join()
    assert report.ok, report.message
    assert time.monotonic() - started >= 1.0  # not released by attempt 0's manifest
    assert (workspace / ".run-1").exists()


def test_staging_that_never_finishes_is_an_infrastructure_error(workspace, monkeypatch):
    monkeypatch.setattr(isolation, "resolv_conf", lambda: "")
    task = {**_task(_closed_port()), "attempt": 2, "awaitStagingSeconds": 0.5}
    report = prepare.run(task, workspace, NO_ENV)
    assert report.reason == "Error" and "staging did not finish within" in report.message
    assert not (workspace / ".run-2").exists()  # nothing started: the attempt is not used up


def test_a_second_pod_of_the_same_attempt_never_starts_the_plugin(workspace, monkeypatch):
    monkeypatch.setattr(isolation, "resolv_conf", lambda: "")
    task = {**_task(_closed_port()), "attempt": 0}
    assert prepare.run(task, workspace, NO_ENV).ok
    again = prepare.run(task, workspace, NO_ENV)
    assert again.reason == "Error" and "already started the plug-in of attempt 1" in again.message
    assert prepare.run({**task, "attempt": 1}, workspace, NO_ENV).ok  # a retry is a new attempt


def test_staging_never_rewrites_inputs_under_a_plugin_that_started(workspace):
    from kubecircus.worker import stage

    assert prepare.ready_workspace(workspace, 0, 0) == (None, [])  # the early pod started attempt 1
    before = (workspace / "in" / "0.raw").read_bytes()
    task = {"namespace": "team", "attempt": 0, "inputs": [{"bucket": "dicom", "prefix": "team/s/"}]}
    report = stage.run(task, None, "kubecircus", workspace, workspace.parent / "scratch")  # type: ignore[arg-type]
    assert report.reason == "Error" and "already started" in report.message  # retried: a new attempt
    assert (workspace / "in" / "0.raw").read_bytes() == before and (workspace / "manifest.json").exists()
