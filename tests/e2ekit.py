"""Helpers for end-to-end tests: PluginJobs and Plugins driven through the API server."""

from __future__ import annotations

import subprocess
import time
from typing import Any

from kubernetes import client

GROUP, VERSION = "kubecircus.io", "v1alpha1"
SYSTEM = "kubecircus-system"
TOOLBOX = "localhost/kubecircus/toolbox:dev"


INPUTS = "dicom"


def max_concurrent(statuses: list[dict[str, Any]]) -> int:
    """The most jobs active at once, from each job's startTime (admission) and completionTime:
    the operator's own record, not a sample taken by polling. Second resolution: a job admitted
    in the second another finished does not count as beside it."""
    edges = []
    for status in statuses:
        edges += [(status["startTime"], 1), (status["completionTime"], -1)]
    active = peak = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):  # ends before starts at a tie
        active += step
        peak = max(peak, active)
    return peak


def launches(core: client.CoreV1Api, ns: str, pod: str) -> int:
    """How many distinct pods named ``pod`` the scheduler placed (from their Scheduled Events)."""
    events = core.list_namespaced_event(
        ns, field_selector=f"involvedObject.name={pod},reason=Scheduled"
    ).items
    return len({e.involved_object.uid for e in events})


BUCKET = "kubecircus"


def job_body(name: str, plugin: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    """A PluginJob reading the namespace's sample series (``dicom/<namespace>/s1/``)."""
    inputs = [{"source": {"bucket": INPUTS, "prefix": f"{namespace}/s1/"}}]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PluginJob",
        "metadata": {"name": name},
        "spec": {"plugin": plugin, "inputs": inputs, **spec},
    }


def bundled_store(core: client.CoreV1Api):
    """A client of the chart's bundled MinIO with its admin keys, through its Service address
    (kube-proxy makes Service addresses reachable from the node)."""
    import base64

    from kubecircus.objectstore.client import Credentials, StoreConfig, connect

    service = core.read_namespaced_service("kubecircus-minio", SYSTEM)
    secret = core.read_namespaced_secret("kubecircus-objectstore", SYSTEM).data
    keys = {k: base64.b64decode(v).decode() for k, v in secret.items()}
    config = StoreConfig(endpoint=f"{service.spec.cluster_ip}:9000", bucket=BUCKET)
    return connect(config, Credentials(keys["accessKey"], keys["secretKey"]), timeout=10)


class Jobs:
    """PluginJobs in one namespace, the way a user drives them with kubectl."""

    def __init__(self, custom: client.CustomObjectsApi, ns: str) -> None:
        self.custom, self.ns = custom, ns
        self._created: dict[str, dict[str, Any]] = {}  # as created: history may delete them later

    def create(self, name: str, plugin: str, **spec: Any) -> dict[str, Any]:
        body = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.ns, "pluginjobs", job_body(name, plugin, self.ns, **spec)
        )
        self._created[name] = body
        return body

    def get(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, "pluginjobs", name)

    def patch(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, "pluginjobs", name, body)

    def child(self, name: str, suffix: str) -> str:
        """The name the operator gives the job's ``suffix`` child (``<job>-<uid8>-<suffix>``)."""
        from kubecircus.operator.api import PluginJob
        from kubecircus.operator.builders import child_name

        body = self._created.get(name) or self.get(name)  # a finished job may be gone (history TTL)
        return child_name(PluginJob.from_body(body), suffix)

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def wait(self, name: str, phases: set[str], timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.status(name)
            if status.get("phase") in phases:
                return status
            time.sleep(0.5)
        raise AssertionError(f"{self.ns}/{name} never reached {phases}; last status: {status}")


# --- the operator's pods ------------------------------------------------------------------


def operator_pods(core):
    return [
        p
        for p in core.list_namespaced_pod(SYSTEM, label_selector="app.kubernetes.io/component=operator").items
        if not p.metadata.deletion_timestamp
    ]


def operator_pod(core):
    pods = operator_pods(core)
    assert pods, "no operator pod"
    return pods[0]


def wait_operator_ready(core, previous: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pod in operator_pods(core):  # the replacement may not exist yet
            ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
            if pod.metadata.name != previous and ready:
                return
        time.sleep(1)
    raise AssertionError("the operator did not come back")


# --- the chart ------------------------------------------------------------------------------


def upgrade_chart(*settings: str) -> None:
    """``helm upgrade --reuse-values --set`` each ``key=value``, then wait for the operator's rollout."""
    from kubetest import CACHE_BIN, KUBECONFIG, ROOT

    helm = CACHE_BIN / "helm"
    assert helm.exists(), f"{helm} is missing: run `make cluster-up`"
    sets = [arg for setting in settings for arg in ("--set", setting)]
    chart = str(ROOT / "helm" / "kubecircus")
    kubectl = str(ROOT / ".cluster" / "bin" / "kubectl")
    rollout = ["rollout", "status", "deployment/kubecircus-operator", "--timeout=120s"]
    for command in (
        [str(helm), "upgrade", "kubecircus", chart, "-n", SYSTEM, "--reuse-values", *sets, "--wait"],
        [kubectl, "-n", SYSTEM, *rollout],
    ):
        subprocess.run(
            [*command, "--kubeconfig", str(KUBECONFIG)],
            check=True,
            capture_output=True,
            text=True,
            encoding="utf-8",
        )
