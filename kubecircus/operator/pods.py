"""Pod manifests of a job's three steps: pure functions from (job, plugin, config) to dicts.

The stage and collect pods run the trusted worker (``kubecircus worker stage|collect``) with the
step's store credentials; the run pod runs ``prepare`` (trusted, no credentials), then the
plug-in with no network, no token, no root and no capabilities. Names, labels, owner and the
other children are in ``builders``.
"""

from __future__ import annotations

import json
from typing import Any

from .api import Plugin, PluginJob
from .builders import (
    JOB_UID,
    ROLE,
    STORE_MOUNT,
    TERMINATION_LOG,
    child_metadata,
    child_name,
    quantity_bytes,
    quantity_order,
    secret_name,
)
from .config import OperatorConfig


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
    metadata = child_metadata(job, child_name(job, role), role)
    if role != "run":
        metadata["annotations"][NO_QUARANTINE] = "true"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


#: On the stage and collect pods: no deny policy of kubecircus selects them (its policies select
#: plug-in pods), so a node that holds a new pod's traffic until its policies are written (the
#: local cluster's quarantine, hack/cluster/cni/kubecircus-quarantine) need not hold theirs: they
#: talk to the store from their first instant instead of ~3 s later. The chart's admission guard
#: refuses it on a plug-in pod.
NO_QUARANTINE = "kubecircus.io/no-network-quarantine"


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
        "attempt": job.status.attempt,  # written into the manifest an early plug-in pod waits for
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


def prepare_task(job: PluginJob, config: OperatorConfig, early: bool = False) -> dict[str, Any]:
    """What ``prepare`` checks. ``attempt`` names the run it claims in the workspace (one plug-in
    start per attempt); an ``early`` pod waits for that attempt's staging to finish."""
    probes = []
    for probe in config.probes:
        name, _, address = probe.partition("=")
        probes.append({"name": name, "address": address})
    return {
        "probes": probes,
        "probeTimeoutSeconds": config.probe_timeout_seconds,
        "isolationWaitSeconds": config.isolation_wait_seconds,
        "isolationSettleSeconds": config.isolation_settle_seconds,
        "attempt": job.status.attempt,
        "awaitStagingSeconds": early_wait(config) if early else 0,
    }


def early_wait(config: OperatorConfig) -> int:
    """How long an early plug-in pod's ``prepare`` waits for staging: the stage pod's deadline
    and a minute for it to be scheduled."""
    return config.stage_deadline_seconds + 60


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
    requests.setdefault("memory", min(config.plugin_memory_request, limits["memory"], key=quantity_order))
    if spec.gpus:
        limits["nvidia.com/gpu"] = spec.gpus
        requests["nvidia.com/gpu"] = spec.gpus
    # quantities are strings to the API (the client refuses a bare 2 for "2")
    return {kind: {name: str(value) for name, value in values.items()} for kind, values in resources.items()}


def run_pod(
    job: PluginJob, plugin: Plugin, config: OperatorConfig, timeout: int, early: bool = False
) -> dict[str, Any]:
    """The plug-in itself: no network, no token, no root, no capabilities, a read-only root
    filesystem with a writable /tmp, /circus/in read-only; ``prepare`` runs first.

    An ``early`` pod is made with the stage pod (``jobs.overlapStaging``): its sandbox, image
    and isolation proof overlap staging, and ``prepare`` holds the plug-in until staging is
    done. Its deadline covers that wait; once staging ends the operator shortens it to the
    plug-in's timeout (``steps.early_deadline``). It prefers the stage pod's node, where a
    ReadWriteOnce workspace is already attached."""
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
    mounts = [{"name": "workspace", "mountPath": "/ws"}]
    prepare = _worker("prepare", config, prepare_task(job, config, early), mounts, False)
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
        timeout + early_wait(config) if early else timeout,
        init=[prepare],
        where=placement(plugin, config),
    )
    if early:
        pod["spec"]["affinity"] = {
            "podAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "labelSelector": {"matchLabels": {JOB_UID: job.uid, ROLE: "stage"}},
                            "topologyKey": "kubernetes.io/hostname",
                        },
                    }
                ]
            }
        }
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
