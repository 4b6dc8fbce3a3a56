"""Manifests of a job's children: pure functions from (job, plugin, config) to dicts.

Every child lives in the job's namespace, carries an ownerReference to the job (so ``kubectl
delete pluginjob`` cascades) and has a deterministic name, so creating it again after an
operator restart is idempotent: ``<job>-ws`` (workspace), ``<job>-isolation`` (NetworkPolicy),
``<job>-stage``, ``<job>-run``, ``<job>-collect`` (pods).
"""

from __future__ import annotations

import json
from typing import Any

from .api import API_VERSION, Plugin, PluginJob
from .config import OperatorConfig

ROLE = "kubecircus.io/role"
JOB_UID = "kubecircus.io/job-uid"
JOB_NAME = "kubecircus.io/job"
ROLES = ("stage", "run", "collect")
#: Exit code of the prepare init container when the plug-in pod could reach the network.
ISOLATION_BREACH_EXIT = 42
#: results.json larger than this is not shipped through the collect pod's log.
MAX_RESULTS_BYTES = 4 * 1024 * 1024


def child_name(job: PluginJob, suffix: str) -> str:
    return f"{job.name}-{suffix}"


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
    }


def _metadata(job: PluginJob, suffix: str, role: str | None = None) -> dict[str, Any]:
    return {
        "name": child_name(job, suffix),
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
        "metadata": _metadata(job, "ws"),
        "spec": spec,
    }


def isolation_policy(job: PluginJob) -> dict[str, Any]:
    """Deny-all, both directions, for this job's plug-in pod; it must exist before the pod."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(job, "isolation"),
        "spec": {
            "podSelector": {"matchLabels": {JOB_UID: job.uid, ROLE: "run"}},
            "policyTypes": ["Ingress", "Egress"],
        },
    }


def _security(config: OperatorConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    pod = {
        "runAsNonRoot": True,
        "runAsUser": config.plugin_uid,
        "runAsGroup": config.plugin_uid,
        "fsGroup": config.plugin_uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "privileged": False}
    return pod, container


def _pod(
    job: PluginJob,
    role: str,
    config: OperatorConfig,
    containers: list[dict[str, Any]],
    init: list[dict[str, Any]] | None = None,
    deadline: int | None = None,
) -> dict[str, Any]:
    pod_security, _ = _security(config)
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security,
        "terminationGracePeriodSeconds": 5,
        "containers": containers,
        "volumes": [{"name": "workspace", "persistentVolumeClaim": {"claimName": child_name(job, "ws")}}],
    }
    if init:
        spec["initContainers"] = init
    if deadline:
        spec["activeDeadlineSeconds"] = deadline
    return {"apiVersion": "v1", "kind": "Pod", "metadata": _metadata(job, role, role), "spec": spec}


def _worker(
    name: str,
    script: str,
    config: OperatorConfig,
    mounts: list[dict[str, Any]],
    env: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    _, container_security = _security(config)
    return {
        "name": name,
        "image": config.worker_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script],
        "env": env or [],
        "securityContext": {**container_security, "readOnlyRootFilesystem": True},
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}},
        "volumeMounts": mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


STAGE_SCRIPT = """set -eu
rm -rf /ws/in /ws/out /ws/staging.json
mkdir -p /ws/in /ws/out
printf '%s\\n' "$KUBECIRCUS_INPUTS" > /ws/staging.json
echo "staged $(printf '%s' "$KUBECIRCUS_INPUTS" | wc -c) bytes of input description"
"""


def stage_pod(job: PluginJob, config: OperatorConfig) -> dict[str, Any]:
    """Lays out the workspace (in/, out/). The DICOM conversion lands here with the data path."""
    inputs = json.dumps([i.model_dump(by_alias=True, exclude_none=True) for i in job.spec.inputs])
    container = _worker(
        "stage",
        STAGE_SCRIPT,
        config,
        [{"name": "workspace", "mountPath": "/ws"}],
        [{"name": "KUBECIRCUS_INPUTS", "value": inputs}],
    )
    return _pod(job, "stage", config, [container])


PREPARE_SCRIPT = f"""set -u
test -d /circus/in && test -d /circus/out || {{ echo "workspace is not staged" >&2; exit 1; }}
find /circus/out -mindepth 1 -delete
breach() {{
  echo "IsolationBreach: $1" > /dev/termination-log; echo "IsolationBreach: $1"; exit {ISOLATION_BREACH_EXIT}
}}
if nc -w 2 "$KUBERNETES_SERVICE_HOST" "$KUBERNETES_SERVICE_PORT" -e /bin/true </dev/null 2>/dev/null; then
  breach "the plug-in pod reached the Kubernetes API server"
fi
if timeout 4 nslookup kubernetes.default.svc.cluster.local >/dev/null 2>&1; then
  breach "the plug-in pod resolved a name through cluster DNS"
fi
echo "isolated: no API server, no DNS"
"""


def run_pod(job: PluginJob, plugin: Plugin, config: OperatorConfig, timeout: int) -> dict[str, Any]:
    """The plug-in itself: no network, no token, no root, no capabilities, /circus/in read-only."""
    _, container_security = _security(config)
    spec = plugin.spec
    resources: dict[str, Any] = {}
    if spec.resources:
        resources = spec.resources.model_dump(by_alias=True, exclude_none=True)
    if spec.gpus:
        resources.setdefault("limits", {})["nvidia.com/gpu"] = spec.gpus
    plugin_container: dict[str, Any] = {
        "name": "plugin",
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": container_security,
        "resources": resources,
        "volumeMounts": [
            {"name": "workspace", "mountPath": "/circus/in", "subPath": "in", "readOnly": True},
            {"name": "workspace", "mountPath": "/circus/out", "subPath": "out"},
        ],
    }
    if spec.command:
        plugin_container["command"] = spec.command
    if spec.args:
        plugin_container["args"] = spec.args
    prepare = _worker(
        "prepare",
        PREPARE_SCRIPT,
        config,
        [
            {"name": "workspace", "mountPath": "/circus/in", "subPath": "in", "readOnly": True},
            {"name": "workspace", "mountPath": "/circus/out", "subPath": "out"},
        ],
    )
    return _pod(job, "run", config, [plugin_container], init=[prepare], deadline=timeout)


COLLECT_SCRIPT = f"""set -eu
cd /ws/out
find . -type f | sort | while IFS= read -r f; do
  echo "FILE $(wc -c < "$f") $(sha256sum "$f" | cut -d' ' -f1) ${{f#./}}"
done
if [ -f results.json ]; then
  size=$(wc -c < results.json)
  echo "RESULTS-SIZE $size"
  if [ "$size" -le {MAX_RESULTS_BYTES} ]; then echo "RESULTS64 $(base64 results.json | tr -d '\\n')"; fi
fi
echo "END"
"""


def collect_pod(job: PluginJob, config: OperatorConfig) -> dict[str, Any]:
    """Reports out/: each file's size and sha256, and results.json, on stdout for the operator."""
    container = _worker(
        "collect", COLLECT_SCRIPT, config, [{"name": "workspace", "mountPath": "/ws", "readOnly": True}]
    )
    return _pod(job, "collect", config, [container])
