"""Hostile plug-ins on the real cluster: each ends with its own reason, no connection succeeds,
nothing they point at leaves the sandbox."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from kubernetes import client

from e2ekit import SYSTEM
from kubetest import API_SERVICE_IP, DNS_SERVICE_IP, NODE_IP, run_to_completion, toolbox_pod

HOSTILE_IMAGE = "localhost/kubecircus/hostile:dev"
FINISHED = {"Succeeded", "Failed"}


@pytest.fixture
def hostile(register_plugin):
    """A Plugin running hostile.py with ``args``."""

    def make(*args: str, **spec) -> str:
        return register_plugin(
            "hostile",
            image=HOSTILE_IMAGE,
            version="1.0.0",
            # resolve only a cluster name (the local DNS never forwards, but be explicit)
            command=["env", "HOSTILE_RESOLVE=kubernetes.default", "python3", "/hostile.py"],
            args=list(args),
            **{"timeoutSeconds": 120, **spec},
        )

    return make


class Listener:
    """A TCP listener on the node that stands for the outside world; counts connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind((NODE_IP, 0))
        self.sock.listen(64)
        self.sock.settimeout(0.5)
        self.accepted = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"{NODE_IP}:{self.sock.getsockname()[1]}"

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


def _operator_pod_ip(core) -> str:
    pods = core.list_namespaced_pod(SYSTEM, label_selector="app.kubernetes.io/component=operator").items
    return next(p.status.pod_ip for p in pods if p.status.pod_ip and not p.metadata.deletion_timestamp)


def _store_addresses(core) -> list[str]:
    service = core.read_namespaced_service("kubecircus-minio", SYSTEM)
    pods = core.list_namespaced_pod(SYSTEM, label_selector="app.kubernetes.io/component=minio").items
    return [f"{service.spec.cluster_ip}:9000", *[f"{p.status.pod_ip}:9000" for p in pods if p.status.pod_ip]]


def _out_keys(store, status) -> list[str]:
    prefix = status.get("outputs", {}).get("prefix") or ""
    uid_prefix = status["logRef"]["key"].rsplit("/", 1)[0] + "/out/" if status.get("logRef") else prefix
    return [
        o.object_name for o in store.list_objects(bucket_name="kubecircus", prefix=uid_prefix, recursive=True)
    ]


def test_every_door_stays_closed_to_a_plugin_trying_them_all(jobs, core, hostile, store):
    outside = Listener()
    try:
        targets = [
            *_store_addresses(core),
            f"{API_SERVICE_IP}:443",
            f"{NODE_IP}:6443",
            f"{NODE_IP}:10250",
            f"{DNS_SERVICE_IP}:53/udp",
            f"{DNS_SERVICE_IP}:53",
            f"{_operator_pod_ip(core)}:8080",
            outside.address,
        ]
        jobs.create("net", hostile("net", *targets))
        status = jobs.wait("net", FINISHED)
    finally:
        outside.close()
    assert status["phase"] == "Succeeded", status
    attempts = status["outputs"]["results"]["results"]["attempts"]
    tried = {a["target"] for a in attempts}
    assert set(targets) <= tried and "kubernetes.default" in " ".join(tried)
    assert [a for a in attempts if a["outcome"] in {"connected", "answered"}] == []
    assert outside.accepted == 0


def test_writes_outside_out_are_refused(jobs, hostile):
    jobs.create("writer", hostile("write-outside"))
    status = jobs.wait("writer", FINISHED)
    assert status["phase"] == "Succeeded", status
    writes = status["outputs"]["results"]["results"]["writes"]
    assert writes and [w for w in writes if w["outcome"] == "written"] == []


def test_symlinks_to_secrets_fail_the_job_and_are_never_followed(jobs, hostile, store):
    secret = "/var/run/kubecircus/store/secretKey"
    jobs.create("links", hostile("symlink", "/proc/self/environ", f"creds={secret}"))
    status = jobs.wait("links", FINISHED)
    assert (status["phase"], status["reason"]) == ("Failed", "OutputInvalid"), status
    assert "symbolic link" in status["message"]
    assert _out_keys(store, status) == []  # nothing of out/ was uploaded


@pytest.mark.parametrize(
    ("args", "spec", "reason", "words"),
    [
        (("exit", "1"), {}, "ExitCode", "exited with code 1"),
        (("oom", "512"), {"resources": {"limits": {"memory": "96Mi"}}}, "OOMKilled", "memory limit"),
        (("sleep", "300"), {"timeoutSeconds": 8}, "Timeout", "longer than 8 s"),
        (("bad-results", "not-json"), {}, "ResultsInvalid", "not JSON"),
        (
            ("bad-results", "schema"),
            {"resultsSchema": {"properties": {"results": {"type": "object"}}}},
            "ResultsInvalid",
            "schema",
        ),
        (("bomb", "bytes", "4096"), {}, "OutputTooLarge", "more than"),
        (("bomb", "deep", "200"), {}, "OutputInvalid", "nest deeper"),
    ],
)
def test_each_misbehaviour_ends_with_its_own_reason(jobs, hostile, store, args, spec, reason, words):
    name = f"h-{args[0]}"
    jobs.create(name, hostile(*args, **spec))
    status = jobs.wait(name, FINISHED, timeout=240)
    assert (status["phase"], status["reason"]) == ("Failed", reason), status
    assert words in status["message"]
    assert _out_keys(store, status) == []


def test_an_extra_policy_that_opens_egress_is_caught_before_the_plugin_runs(
    k8s, core, jobs, ns, hostile, store
):
    """A namespace where someone allowed plug-in pods out: prepare finds the open doors."""
    client.NetworkingV1Api(k8s).create_namespaced_network_policy(
        ns,
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "careless-allow-egress"},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]},
        },
    )
    # the careless policy predates the job (enforcers apply rules asynchronously): wait until a
    # pod labelled like a plug-in pod really gets out, then submit
    probe = f"nc -w 1 {API_SERVICE_IP} 443 -e /bin/true"
    opened = f"for i in $(seq 1 120); do {probe} && exit 0; sleep 0.5; done; exit 1"
    code, _ = run_to_completion(core, ns, toolbox_pod("check-open", opened, {"kubecircus.io/role": "run"}))
    assert code == 0, "the careless policy never opened egress"
    jobs.create("breach", hostile("exit", "0"))
    status = jobs.wait("breach", FINISHED)
    assert (status["phase"], status["reason"]) == ("Failed", "IsolationBreach"), status
    assert "open: connected" in status["message"] or "DNS answer" in status["message"]
    assert status.get("exitCode") is None and not status.get("logRef")  # the plug-in never started


def test_outputs_stay_summarised_in_the_status(jobs, hostile, store):
    jobs.create("many", hostile("bomb", "files", "400"))
    status = jobs.wait("many", FINISHED)
    assert status["phase"] == "Succeeded", status
    assert status["outputs"]["fileCount"] == 401 and "files" not in status["outputs"]
    manifest = json.loads(
        store.get_object(bucket_name="kubecircus", object_name=status["outputs"]["manifest"]).read()
    )
    assert len(manifest["outputs"]) == 401


def test_stdout_that_is_not_utf8_is_kept_and_never_blocks_the_job(jobs, make_plugin, store):
    """A plug-in's bytes are not text: the operator must not choke on them (a Latin-1 log, or a
    character cut by the log cap), and the job still moves on."""
    script = (
        "printf 'caf\\351 \\377\\376 r\\303\\251sultat\\n'; "
        "echo '{\"results\": {}}' > /circus/out/results.json"
    )
    jobs.create("bytes", make_plugin(script))
    status = jobs.wait("bytes", FINISHED)
    assert status["phase"] == "Succeeded", status
    log = store.get_object(bucket_name="kubecircus", object_name=status["logRef"]["key"]).read().decode()
    assert "r\u00e9sultat" in log and "\ufffd" in log and "r\u00e9sultat" in status["logTail"]


def test_a_cancelled_plugin_gets_no_moment_of_network(core, k8s, jobs, ns, register_plugin):
    """Cancel while a plug-in probes the outside world in a loop: its pod is killed at once (no
    grace to trap SIGTERM in), its deny-all goes only once the pod is gone, and the namespace's
    standing deny-all covers every plug-in pod anyway. Not one connection gets out."""
    outside = Listener()
    try:
        plugin = register_plugin(
            "prober",
            image=HOSTILE_IMAGE,
            version="1.0.0",
            command=["env", "HOSTILE_RESOLVE=", "HOSTILE_NET_ROUNDS=400", "HOSTILE_NET_TIMEOUT=0.3"],
            args=["python3", "/hostile.py", "net", outside.address],
            timeoutSeconds=300,
        )
        jobs.create("prober", plugin)
        run_pod = jobs.child("prober", "run")
        deadline = time.monotonic() + 120
        while "round 1:" not in _plugin_log(core, ns, run_pod):
            assert time.monotonic() < deadline, "the prober never started"
            time.sleep(0.3)
        jobs.patch("prober", {"spec": {"cancel": True}})
        assert jobs.wait("prober", {"Cancelled"})["reason"] == "Cancelled"
        deadline = time.monotonic() + 30
        while core.list_namespaced_pod(ns, label_selector="kubecircus.io/role=run").items:
            assert time.monotonic() < deadline, "the plug-in pod outlived its cancel"
            time.sleep(0.2)
        time.sleep(2)  # any connection the dying pod managed would have arrived by now
    finally:
        outside.close()
    assert outside.accepted == 0
    policies = {p.metadata.name for p in client.NetworkingV1Api(k8s).list_namespaced_network_policy(ns).items}
    assert "kubecircus-plugin-deny-all" in policies


def _plugin_log(core, ns: str, pod: str) -> str:
    try:
        return core.read_namespaced_pod_log(pod, ns, container="plugin")
    except client.exceptions.ApiException:
        return ""
