"""Helpers for tests against the real cluster (``make cluster-up``): Kueue-style small builders.

Everything goes through the real API server with the admin kubeconfig in ``.cluster/``; a test
that finds no cluster fails and says how to start one (it never skips silently).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kubernetes import client, config
from kubernetes.client.rest import ApiException

ROOT = Path(__file__).resolve().parents[1]
KUBECONFIG = Path(os.environ.get("KUBECIRCUS_KUBECONFIG", ROOT / ".cluster" / "kubeconfig"))
#: Binaries `make cluster-up` builds from their Go modules (helm, minio, ...).
CACHE_BIN = Path(os.environ.get("KUBECIRCUS_CACHE", Path.home() / ".cache" / "kubecircus")) / "bin"
TOOLBOX = "localhost/kubecircus/toolbox:dev"
#: The node's address, where host processes (MinIO in tests) listen.
NODE_IP = os.environ.get("KUBECIRCUS_NODE_IP", "10.87.0.1")
API_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"


def api_client() -> client.ApiClient:
    assert KUBECONFIG.exists(), f"no cluster: {KUBECONFIG} is missing; run `make cluster-up` first"
    return config.new_client_from_config(str(KUBECONFIG))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@contextmanager
def namespace(core: client.CoreV1Api, prefix: str, labels: dict[str, str] | None = None) -> Iterator[str]:
    name = unique(prefix)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels or {})))
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background", grace_period_seconds=0)


def toolbox_pod(name: str, script: str, labels: dict[str, str] | None = None, **spec: object) -> client.V1Pod:
    """A pod running ``sh -c script`` in the toolbox image, never restarted."""
    container = client.V1Container(
        name="main",
        image=TOOLBOX,
        image_pull_policy="Never",
        command=["sh", "-c", script],
        resources=client.V1ResourceRequirements(limits={"memory": "32Mi", "cpu": "200m"}),
    )
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels or {}),
        spec=client.V1PodSpec(
            containers=[container],
            restart_policy="Never",
            termination_grace_period_seconds=0,
            automount_service_account_token=False,
            **spec,
        ),
    )


def wait_for_pod(
    core: client.CoreV1Api, ns: str, name: str, phases: set[str], timeout: float = 120
) -> client.V1Pod:
    deadline = time.monotonic() + timeout
    while True:
        pod = core.read_namespaced_pod(name, ns)
        if pod.status.phase in phases:
            return pod
        if time.monotonic() > deadline:
            events = core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
            raise AssertionError(
                f"pod {ns}/{name} still {pod.status.phase} after {timeout}s; events: "
                + "; ".join(f"{e.reason}: {e.message}" for e in events)
            )
        time.sleep(0.5)


def run_to_completion(
    core: client.CoreV1Api, ns: str, pod: client.V1Pod, timeout: float = 120
) -> tuple[int, str]:
    """Create the pod, wait until it ends, return (main container exit code, its log)."""
    core.create_namespaced_pod(ns, pod)
    done = wait_for_pod(core, ns, pod.metadata.name, {"Succeeded", "Failed"}, timeout)
    state = next(s for s in done.status.container_statuses if s.name == "main").state
    return state.terminated.exit_code, core.read_namespaced_pod_log(pod.metadata.name, ns, container="main")


def api_error(call, *args, **kwargs) -> ApiException:
    """The ApiException a call raises (the call must fail)."""
    try:
        call(*args, **kwargs)
    except ApiException as exc:
        return exc
    raise AssertionError(f"{call.__name__} was accepted")


def deny_all(k8s: client.ApiClient, ns: str, name: str = "deny-all", **spec: object) -> None:
    """A NetworkPolicy for pods labelled isolated=yes: deny-all, unless ``spec`` adds rules."""
    client.NetworkingV1Api(k8s).create_namespaced_network_policy(
        ns,
        client.V1NetworkPolicy(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1NetworkPolicySpec(
                pod_selector=client.V1LabelSelector(match_labels={"isolated": "yes"}),
                policy_types=["Ingress", "Egress"],
                **spec,
            ),
        ),
    )


def tcp_peer(core: client.CoreV1Api, ns: str) -> str:
    """A pod ("peer", role=peer) answering TCP on port 9090; returns its address."""
    peer = toolbox_pod("peer", "while true; do echo hi | nc -l -p 9090; done", labels={"role": "peer"})
    peer.spec.restart_policy = "Always"
    core.create_namespaced_pod(ns, peer)
    return wait_for_pod(core, ns, "peer", {"Running"}).status.pod_ip
