"""Manifests of a job's children: pure functions from (job, plugin, config) to dicts.

Every child lives in the job's namespace, carries an ownerReference to the job (so ``kubectl
delete pluginjob`` cascades) and has a deterministic name, so creating it again after an
operator restart is idempotent: ``<job>-<uid8>-ws`` (workspace), ``<job>-<uid8>-isolation``
(NetworkPolicy), ``<job>-<uid8>-stage``, ``-run``, ``-collect`` (pods), ``-stage-store`` and
``-collect-store`` (the step's object-store credentials, mounted only into that step's pod).
``<uid8>`` is the start of the job's UID: a job deleted and created again under its name never
meets its predecessor's children, and no object made before the job can carry its children's
names (the operator still checks ownership of whatever it finds: ``kube.Kube``).

The trusted steps run ``kubecircus worker stage|prepare|collect`` from the worker image; what
they are asked to do travels as JSON in ``KUBECIRCUS_TASK`` (no secrets in it).
"""

from __future__ import annotations

from typing import Any

from kubecircus.objectstore import layout

from .api import API_VERSION, PluginJob
from .config import OperatorConfig

ROLE = "kubecircus.io/role"
JOB_UID = "kubecircus.io/job-uid"
JOB_NAME = "kubecircus.io/job"
ROLES = ("stage", "run", "collect")
STORE_MOUNT = "/var/run/kubecircus/store"
TERMINATION_LOG = "/dev/termination-log"


#: Longest child name: a DNS label. A pod's name is also its hostname (at most 63 characters),
#: and node-local provisioners (local-path) build directory names from claim names, which a
#: 253-character name overflows (a file name holds 255 bytes).
MAX_NAME = 63


def child_name(job: PluginJob, suffix: str) -> str:
    """``<job>-<uid8>-<suffix>``: the job's name shortened (dots become dashes) so the whole is a
    DNS label; the UID part keeps it unique, the suffix says what the child is."""
    tail = f"-{job.uid[:8]}-{suffix}"
    return job.name.replace(".", "-")[: MAX_NAME - len(tail)].rstrip("-") + tail


def secret_name(job: PluginJob, step: str) -> str:
    return child_name(job, f"{step}-store")


def labels(job: PluginJob, role: str | None = None) -> dict[str, str]:
    out = {
        "app.kubernetes.io/managed-by": "kubecircus",
        JOB_UID: job.uid,
        JOB_NAME: job.name[:63].rstrip("-."),
    }
    if role:
        out[ROLE] = role
    return out


def owner_reference(job: PluginJob) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "PluginJob",
        "name": job.name,
        "uid": job.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(job: PluginJob, name: str, role: str | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": job.namespace,
        "labels": labels(job, role),
        "annotations": {"kubecircus.io/job": job.name},
        "ownerReferences": [owner_reference(job)],
    }


def workspace_claim(job: PluginJob, config: OperatorConfig) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": config.workspace_size}},
    }
    if config.storage_class:
        spec["storageClassName"] = config.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": child_metadata(job, child_name(job, "ws")),
        "spec": spec,
    }


def isolation_policy(job: PluginJob) -> dict[str, Any]:
    """Deny-all, both directions, for this job's plug-in pod; it must exist before the pod."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": child_metadata(job, child_name(job, "isolation")),
        "spec": {
            "podSelector": {"matchLabels": {JOB_UID: job.uid, ROLE: "run"}},
            "policyTypes": ["Ingress", "Egress"],
        },
    }


NAMESPACE_POLICY = "kubecircus-plugin-deny-all"


def namespace_policy(namespace: str) -> dict[str, Any]:
    """Deny-all for every plug-in pod of the namespace, made with its first job and kept: no
    plug-in pod is ever without one, whatever happens to a job's own policy (deleted on cancel,
    not yet made, taken away by an operator crash)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": NAMESPACE_POLICY,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "kubecircus"},
        },
        "spec": {"podSelector": {"matchLabels": {ROLE: "run"}}, "policyTypes": ["Ingress", "Egress"]},
    }


def credentials_secret(job: PluginJob, step: str) -> dict[str, Any]:
    """The step's Secret without its data: the operator mints the credentials when it creates it."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": child_metadata(job, secret_name(job, step), step),
    }


def outputs_prefix(job: PluginJob) -> str:
    return layout.job_prefix(job.namespace, job.uid)


_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes quantity as bytes: '8Gi' → 8589934592."""
    for unit, factor in _UNITS.items():
        if quantity.endswith(unit):
            return int(float(quantity[: -len(unit)]) * factor)
    return int(float(quantity))


def quantity_order(quantity: str | int) -> int:
    """Order quantities by size, so a default request never exceeds the Plugin's own limit."""
    return quantity_bytes(str(quantity))
