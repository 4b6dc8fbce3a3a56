"""Operator configuration: every setting in one place, read from environment variables.

Each setting the Helm chart controls names its ``values.yaml`` key here (:func:`setting`), and
``kubecircus generate`` writes the Deployment's environment list from that
(``helm/kubecircus/templates/_operator-env.tpl``, checked by ``make lint``): one source per
setting. ``values.yaml`` documents each for the people installing the chart. The store location
comes from the chart's ``kubecircus.storeEnv`` (shared with the set-up Job); identity, pod
address and namespace from the downward API. Running the operator by hand, export
``KUBECIRCUS_<FIELD>``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any


def setting(default: Any, chart: str) -> Any:
    """A setting the Helm chart sets: ``chart`` is its ``values.yaml`` key (``queue.maxAttempts``)
    or, after ``=``, a template expression (for values that need a helper or a ``join``)."""
    return field(default=default, metadata={"chart": chart})


@dataclass(frozen=True)
class OperatorConfig:
    #: Jobs in Staging/Running/Collecting at once, cluster-wide (CIRCUS CS runs one at a time).
    max_concurrent_jobs: int = setting(1, "queue.maxConcurrentJobs")
    #: Waiting jobs whose status.queuePosition is kept (the rest show no position: bounded writes).
    queue_positions_shown: int = setting(20, "queue.positionsShown")
    #: The highest priority a job counts with, and per-namespace caps ("team-a=50,team-b=0"):
    #: one tenant cannot jump the shared queue by writing a large number.
    max_priority: int = setting(100, "queue.maxPriority")
    namespace_max_priority: str = setting("", '=include "kubecircus.namespaceCaps" . | quote')
    #: Launches of a phase's pod after infrastructure failures (evictions, lost nodes) before Failed.
    max_attempts: int = setting(3, "queue.maxAttempts")
    #: Finished jobs are deleted this long after completion (0: never).
    history_ttl_seconds: int = setting(7 * 24 * 3600, "history.ttlSeconds")
    #: At most this many finished jobs are kept, oldest deleted first (Orthanc's JobsHistorySize).
    history_size: int = setting(1000, "history.size")
    #: Image of the trusted stage, prepare and collect steps (`kubecircus worker ...`).
    worker_image: str = setting(
        "localhost/kubecircus/worker:dev", '=include "kubecircus.workerImage" . | quote'
    )
    #: StorageClass of the per-job workspace volume ("" = the cluster's default).
    storage_class: str = setting("", "jobs.storageClass")
    workspace_size: str = setting("4Gi", "jobs.workspaceSize")
    #: The stage pod's scratch space for downloaded DICOM (an emptyDir of this size at most).
    scratch_size: str = setting("8Gi", "jobs.scratchSize")
    #: A step's pod that has not started this long after its creation (unschedulable, a workspace
    #: that never binds, an image that cannot be pulled) ends the attempt.
    pending_deadline_seconds: int = setting(600, "jobs.pendingDeadlineSeconds")
    #: Deadlines of the stage and collect pods (their credentials last as long).
    stage_deadline_seconds: int = setting(1800, "jobs.stageDeadlineSeconds")
    collect_deadline_seconds: int = setting(900, "jobs.collectDeadlineSeconds")
    #: Make the plug-in pod with the stage pod: its start and isolation proof overlap staging,
    #: and it holds its resources (GPUs too) while staging runs. Opt-in: docs/data-path.md.
    overlap_staging: bool = setting(False, "jobs.overlapStaging")
    #: Seconds a step keeps retrying while the object store is unavailable before it gives up.
    store_retry_seconds: int = setting(120, "jobs.storeRetrySeconds")
    #: results.json larger than this is not copied into status.outputs.results.
    max_inline_results_bytes: int = setting(64 * 1024, "jobs.maxInlineResultsBytes")
    #: results.json larger than this fails the job with ResultsInvalid.
    max_results_bytes: int = setting(4 * 1024**2, "jobs.maxResultsBytes")
    #: A plug-in writing more than this to out/ fails with reason OutputTooLarge.
    max_output_bytes: int = setting(1024**3, "jobs.maxOutputBytes")
    max_output_files: int = setting(10000, "jobs.maxOutputFiles")
    #: The plug-in's stdout kept as plugin-log.txt (the start of it, when longer).
    max_log_bytes: int = setting(16 * 1024**2, "jobs.maxLogBytes")
    #: User and group the plug-in runs as (never root).
    plugin_uid: int = setting(65532, "jobs.pluginUid")
    #: The plug-in's writable /tmp, and its ephemeral-storage limit when the Plugin sets none.
    plugin_tmp_size: str = setting("1Gi", "jobs.pluginTmpSize")
    plugin_ephemeral_storage: str = setting("2Gi", "jobs.pluginEphemeralStorage")
    #: Seconds between two reads of a running plug-in's log tail for its progress lines.
    progress_interval: float = setting(5.0, "jobs.progressIntervalSeconds")
    #: Node labels of GPU nodes ("nvidia.com/gpu.present=true"): a job whose Plugin asks for
    #: GPUs runs all its pods there, so its node-local workspace is made where the GPU is.
    gpu_node_selector: str = setting("", '=include "kubecircus.gpuNodeSelector" . | quote')
    #: What a plug-in pod gets when its Plugin says nothing (never a BestEffort pod).
    plugin_cpu_request: str = setting("250m", "jobs.pluginCpuRequest")
    plugin_memory_request: str = setting("256Mi", "jobs.pluginMemoryRequest")
    plugin_memory_limit: str = setting("2Gi", "jobs.pluginMemoryLimit")
    #: RuntimeClass of plug-in pods whose Plugin names none ("" = the cluster's default runtime).
    plugin_runtime_class: str = setting("", "jobs.runtimeClassName")
    #: Refuse Plugins whose image is not pinned by digest (image@sha256:...).
    require_image_digest: bool = setting(False, "jobs.requireImageDigest")
    #: The isolation proof: each attempt's timeout, and how long doors may take to close.
    probe_timeout_seconds: float = setting(0.5, "isolation.probeTimeoutSeconds")
    isolation_wait_seconds: float = setting(10.0, "isolation.waitSeconds")
    #: Every door must stay closed this long in a row: longer than any hold on a new pod's
    #: traffic (the local cluster's 3 s quarantine, an enforcer that drops unknown pods), after
    #: which a matching allow policy would open doors.
    isolation_settle_seconds: float = setting(4.0, "isolation.settleSeconds")
    #: More host:port doors the proof must find closed, comma-separated (e.g. a proxy).
    extra_probes: str = setting("", '=join "," .Values.isolation.extraProbes | quote')
    #: The object store (S3 + STS): host:port, TLS, region, kubecircus's bucket.
    store_endpoint: str = ""
    store_secure: bool = False
    store_region: str = "us-east-1"
    store_bucket: str = "kubecircus"
    store_ca_file: str = ""
    #: The CA's PEM text, read from store_ca_file at start-up and handed to the workers.
    store_ca_pem: str = ""
    #: Buckets PluginJob inputs may name (comma-separated); a job reads only `<namespace>/...`.
    input_buckets: str = "dicom"
    #: The operator's own store user (a mounted Secret: accessKey, secretKey).
    store_credentials: str = "/var/run/kubecircus/store"
    #: Cached volumes older than this (since last use) are deleted; 0 keeps them.
    cache_max_age_seconds: int = setting(30 * 24 * 3600, "cache.maxAgeSeconds")
    #: When the cache holds more than this, the least recently used entries go first.
    cache_max_bytes: int = setting(50 * 1024**3, "cache.maxBytes")
    cache_sweep_seconds: int = setting(600, "cache.sweepSeconds")
    #: Every job is re-examined at least this often (seconds), besides reacting to events.
    reconcile_interval: float = setting(5.0, "queue.reconcileIntervalSeconds")
    #: Port of /metrics and /healthz.
    metrics_port: int = setting(8080, "metrics.port")
    #: Only the holder of a Lease in this namespace runs (standby replicas wait).
    leader_election: bool = True
    #: Namespaces whose PluginJobs this operator runs ("a,b"; "" = every namespace). The chart
    #: then binds its namespaced permissions in these namespaces only (operator.watchNamespaces).
    watch_namespaces: str = setting("", '=join "," .Values.operator.watchNamespaces | quote')
    namespace: str = "kubecircus-system"
    lease_name: str = setting(
        "kubecircus-operator", '=printf "%s-operator" (include "kubecircus.fullname" .) | quote'
    )
    #: Identity of this replica (the pod name in the chart).
    identity: str = ""
    #: This replica's pod address (the chart's POD_IP): the "another pod" of the isolation proof.
    pod_ip: str = ""
    #: Doors of the isolation proof as "name=host:port", resolved by the engine (not from env).
    probes: tuple[str, ...] = ()

    def priority_cap(self, namespace: str) -> int:
        for item in self.namespace_max_priority.split(","):
            name, _, cap = item.partition("=")
            if name.strip() == namespace and cap.strip().lstrip("-").isdigit():
                return int(cap)
        return self.max_priority

    def effective_priority(self, namespace: str, priority: int) -> int:
        return min(priority, self.priority_cap(namespace))

    @property
    def gpu_node_labels(self) -> dict[str, str]:
        pairs = (p.split("=", 1) for p in self.gpu_node_selector.split(",") if "=" in p)
        return {k.strip(): v.strip() for k, v in pairs if k.strip()}

    @property
    def watched_namespaces(self) -> tuple[str, ...]:
        return tuple(sorted({n.strip() for n in self.watch_namespaces.split(",") if n.strip()}))

    @property
    def input_bucket_names(self) -> tuple[str, ...]:
        return tuple(b.strip() for b in self.input_buckets.split(",") if b.strip())

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> OperatorConfig:
        """``KUBECIRCUS_<FIELD>`` for every field, e.g. ``KUBECIRCUS_MAX_CONCURRENT_JOBS=2``."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"KUBECIRCUS_{f.name.upper()}")
            kind = type(f.default)
            if raw is None or kind not in (str, int, float, bool):
                continue
            if kind is bool:
                values[f.name] = raw.strip().lower() in {"1", "true", "yes", "on"}
            else:
                try:
                    values[f.name] = kind(raw)
                except ValueError:
                    raise ValueError(
                        f"KUBECIRCUS_{f.name.upper()}={raw!r} is not a valid {kind.__name__}"
                    ) from None
        config = cls(**values)  # type: ignore[arg-type]
        if not config.identity:
            values["identity"] = env.get("POD_NAME") or os.uname().nodename
        if not config.pod_ip and env.get("POD_IP"):
            values["pod_ip"] = env["POD_IP"]
        config = cls(**values)  # type: ignore[arg-type]
        if config.store_bucket in config.input_bucket_names:
            raise ValueError(
                f"KUBECIRCUS_INPUT_BUCKETS names kubecircus's own bucket {config.store_bucket!r}: a "
                "namespace called 'jobs' or 'cache' could then read every tenant's outputs"
            )
        if config.max_concurrent_jobs < 1 or config.max_attempts < 1:
            raise ValueError("KUBECIRCUS_MAX_CONCURRENT_JOBS and KUBECIRCUS_MAX_ATTEMPTS must be at least 1")
        return config
