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

import json
from typing import Any

from kubecircus.objectstore import layout

from .api import API_VERSION, Plugin, PluginJob
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


def _metadata(job: PluginJob, name: str, role: str | None = None) -> dict[str, Any]:
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
        "metadata": _metadata(job, child_name(job, "ws")),
        "spec": spec,
    }


def isolation_policy(job: PluginJob) -> dict[str, Any]:
    """Deny-all, both directions, for this job's plug-in pod; it must exist before the pod."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(job, child_name(job, "isolation")),
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
        "metadata": _metadata(job, secret_name(job, step), step),
    }


def _pod_security(config: OperatorConfig) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": config.plugin_uid,
        "runAsGroup": config.plugin_uid,
        "fsGroup": config.plugin_uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "privileged": False,
    "readOnlyRootFilesystem": True,
}


def placement(plugin: Plugin, config: OperatorConfig) -> dict[str, Any]:
    """Where a job's pods may run: where its plug-in can. The run pod needs the Plugin's node
    labels and tolerations (and, with GPUs, the chart's GPU node labels); the stage and collect
    pods get the same, because a node-local workspace is made on the node of its first pod."""
    selector = dict(config.gpu_node_labels if plugin.spec.gpus else {})
    selector.update(plugin.spec.node_selector or {})
    out: dict[str, Any] = {}
    if selector:
        out["nodeSelector"] = selector
    if plugin.spec.tolerations:
        out["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in plugin.spec.tolerations]
    return out


def _pod(
    job: PluginJob,
    role: str,
    config: OperatorConfig,
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    deadline: int,
    init: list[dict[str, Any]] | None = None,
    where: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": _pod_security(config),
        "terminationGracePeriodSeconds": 5,
        "activeDeadlineSeconds": deadline,
        "containers": containers,
        "volumes": [
            {"name": "workspace", "persistentVolumeClaim": {"claimName": child_name(job, "ws")}},
            *volumes,
        ],
    }
    if init:
        spec["initContainers"] = init
    spec.update(where or {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(job, child_name(job, role), role),
        "spec": spec,
    }


def _store_env(config: OperatorConfig) -> list[dict[str, Any]]:
    env = [
        {"name": "KUBECIRCUS_STORE_ENDPOINT", "value": config.store_endpoint},
        {"name": "KUBECIRCUS_STORE_BUCKET", "value": config.store_bucket},
        {"name": "KUBECIRCUS_STORE_SECURE", "value": str(config.store_secure).lower()},
        {"name": "KUBECIRCUS_STORE_REGION", "value": config.store_region},
    ]
    if config.store_ca_pem:
        env.append({"name": "KUBECIRCUS_STORE_CA_PEM", "value": config.store_ca_pem})
    return env


def _worker(
    step: str, config: OperatorConfig, task: dict[str, Any], mounts: list[dict[str, Any]], store: bool
) -> dict[str, Any]:
    env = [{"name": "KUBECIRCUS_TASK", "value": json.dumps(task, separators=(",", ":"), sort_keys=True)}]
    if store:
        env += _store_env(config)
        mounts = [*mounts, {"name": "store-credentials", "mountPath": STORE_MOUNT, "readOnly": True}]
    return {
        "name": step,
        "image": config.worker_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["kubecircus", "worker", step],
        "env": env,
        "securityContext": CONTAINER_SECURITY,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "768Mi"}},
        "volumeMounts": [*mounts, {"name": "worker-tmp", "mountPath": "/tmp"}],
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
    }


def _worker_volumes(job: PluginJob, step: str) -> list[dict[str, Any]]:
    return [
        {"name": "worker-tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        {
            "name": "store-credentials",
            "secret": {"secretName": secret_name(job, step), "defaultMode": 0o440},
        },
    ]


#: A new pod's first packets may be dropped while NetworkPolicy enforcers learn its address; the
#: resolver's default 5 s before asking again would then stall every step that names the store.
DNS_CONFIG = {"options": [{"name": "timeout", "value": "1"}, {"name": "attempts", "value": "5"}]}


def stage_pod(job: PluginJob, plugin: Plugin, config: OperatorConfig) -> dict[str, Any]:
    """Fetches, converts (through the cache) and lays out every input on the workspace."""
    task = {
        "namespace": job.namespace,
        "inputs": [i.source.model_dump(by_alias=True) | _selection(i) for i in job.spec.inputs],
        # never more DICOM than the scratch space holds: beyond it, a clear refusal, not ENOSPC
        "limits": {
            "retry_seconds": config.store_retry_seconds,
            "max_input_bytes": quantity_bytes(config.scratch_size),
        },
    }
    mounts = [{"name": "workspace", "mountPath": "/ws"}, {"name": "scratch", "mountPath": "/scratch"}]
    container = _worker("stage", config, task, mounts, store=True)
    volumes = [
        *_worker_volumes(job, "stage"),
        {"name": "scratch", "emptyDir": {"sizeLimit": config.scratch_size}},
    ]
    pod = _pod(
        job,
        "stage",
        config,
        [container],
        volumes,
        config.stage_deadline_seconds,
        where=placement(plugin, config),
    )
    pod["spec"]["dnsConfig"] = DNS_CONFIG
    return pod


def _selection(item: Any) -> dict[str, Any]:
    out = {}
    if item.series_instance_uid:
        out["seriesInstanceUID"] = item.series_instance_uid
    if item.range:
        out["range"] = item.range
    return out


def prepare_task(config: OperatorConfig) -> dict[str, Any]:
    probes = []
    for probe in config.probes:
        name, _, address = probe.partition("=")
        probes.append({"name": name, "address": address})
    return {
        "probes": probes,
        "probeTimeoutSeconds": config.probe_timeout_seconds,
        "isolationWaitSeconds": config.isolation_wait_seconds,
        "isolationSettleSeconds": config.isolation_settle_seconds,
    }


def _plugin_resources(plugin: Plugin, config: OperatorConfig) -> dict[str, Any]:
    spec = plugin.spec
    resources: dict[str, Any] = {}
    if spec.resources:
        resources = spec.resources.model_dump(by_alias=True, exclude_none=True)
    limits = resources.setdefault("limits", {})
    requests = resources.setdefault("requests", {})
    limits.setdefault("ephemeral-storage", config.plugin_ephemeral_storage)
    limits.setdefault("memory", config.plugin_memory_limit)
    requests.setdefault("cpu", config.plugin_cpu_request)
    requests.setdefault("memory", min(config.plugin_memory_request, limits["memory"], key=_quantity_sort))
    if spec.gpus:
        limits["nvidia.com/gpu"] = spec.gpus
        requests["nvidia.com/gpu"] = spec.gpus
    # quantities are strings to the API (the client refuses a bare 2 for "2")
    return {kind: {name: str(value) for name, value in values.items()} for kind, values in resources.items()}


def run_pod(job: PluginJob, plugin: Plugin, config: OperatorConfig, timeout: int) -> dict[str, Any]:
    """The plug-in itself: no network, no token, no root, no capabilities, a read-only root
    filesystem with a writable /tmp, /circus/in read-only; ``prepare`` runs first."""
    spec = plugin.spec
    env = [{"name": "HOME", "value": "/tmp"}]
    if not spec.gpus:
        env.append({"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"})
    plugin_container: dict[str, Any] = {
        "name": "plugin",
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": CONTAINER_SECURITY,
        "resources": _plugin_resources(plugin, config),
        "env": env,
        "volumeMounts": [
            {"name": "workspace", "mountPath": "/circus/in", "subPath": "in", "readOnly": True},
            {"name": "workspace", "mountPath": "/circus/out", "subPath": "out"},
            {"name": "plugin-tmp", "mountPath": "/tmp"},
        ],
    }
    if spec.command:
        plugin_container["command"] = spec.command
    if spec.args:
        plugin_container["args"] = spec.args
    prepare = _worker(
        "prepare", config, prepare_task(config), [{"name": "workspace", "mountPath": "/ws"}], False
    )
    prepare["env"].append({"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}})
    volumes = [
        {"name": "worker-tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        {"name": "plugin-tmp", "emptyDir": {"sizeLimit": config.plugin_tmp_size}},
    ]
    pod = _pod(
        job,
        "run",
        config,
        [plugin_container],
        volumes,
        timeout,
        init=[prepare],
        where=placement(plugin, config),
    )
    runtime = spec.runtime_class_name or config.plugin_runtime_class
    if runtime:
        pod["spec"]["runtimeClassName"] = runtime
    return pod


def collect_pod(job: PluginJob, plugin: Plugin, config: OperatorConfig) -> dict[str, Any]:
    """Checks out/ and uploads it with a manifest naming the plug-in build that ran."""
    task: dict[str, Any] = {
        "namespace": job.namespace,
        "uid": job.uid,
        "maxFiles": config.max_output_files,
        "maxBytes": config.max_output_bytes,
        "maxResultsBytes": config.max_results_bytes,
        "retrySeconds": config.store_retry_seconds,
        "manifest": {
            "job": {"namespace": job.namespace, "name": job.name, "uid": job.uid},
            "plugin": {
                "name": job.spec.plugin,
                "version": plugin.spec.version,
                "image": plugin.spec.image,
                "imageID": job.status.plugin_image_id,
            },
            "exitCode": job.status.exit_code,
        },
    }
    if plugin.spec.results_schema:
        task["resultsSchema"] = plugin.spec.results_schema
    mounts = [{"name": "workspace", "mountPath": "/ws", "readOnly": True}]
    container = _worker("collect", config, task, mounts, store=True)
    pod = _pod(
        job,
        "collect",
        config,
        [container],
        _worker_volumes(job, "collect"),
        config.collect_deadline_seconds,
        where=placement(plugin, config),
    )
    pod["spec"]["dnsConfig"] = DNS_CONFIG
    return pod


def outputs_prefix(job: PluginJob) -> str:
    return layout.job_prefix(job.namespace, job.uid)


_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes quantity as bytes: '8Gi' → 8589934592."""
    for unit, factor in _UNITS.items():
        if quantity.endswith(unit):
            return int(float(quantity[: -len(unit)]) * factor)
    return int(float(quantity))


def _quantity_sort(quantity: str | int) -> int:
    """Order quantities by size, so a default request never exceeds the Plugin's own limit."""
    return quantity_bytes(str(quantity))
