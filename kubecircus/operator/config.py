"""Operator configuration: every setting in one place, read from environment variables.

The Helm chart sets these from ``values.yaml`` (see ``helm/kubecircus/values.yaml`` for the
documentation of each); running the operator by hand, export them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class OperatorConfig:
    #: Jobs in Staging/Running/Collecting at once, cluster-wide (CIRCUS CS runs one at a time).
    max_concurrent_jobs: int = 1
    #: Waiting jobs whose status.queuePosition is kept (the rest show no position: bounded writes).
    queue_positions_shown: int = 20
    #: The highest priority a job counts with, and per-namespace caps ("team-a=50,team-b=0"):
    #: one tenant cannot jump the shared queue by writing a large number.
    max_priority: int = 100
    namespace_max_priority: str = ""
    #: Launches of a phase's pod after infrastructure failures (evictions, lost nodes) before Failed.
    max_attempts: int = 3
    #: Finished jobs are deleted this long after completion (0: never).
    history_ttl_seconds: int = 7 * 24 * 3600
    #: At most this many finished jobs are kept, oldest deleted first (Orthanc's JobsHistorySize).
    history_size: int = 1000
    #: Image of the trusted stage, prepare and collect steps (`kubecircus worker ...`).
    worker_image: str = "localhost/kubecircus/worker:dev"
    #: StorageClass of the per-job workspace volume ("" = the cluster's default).
    storage_class: str = ""
    workspace_size: str = "4Gi"
    #: The stage pod's scratch space for downloaded DICOM (an emptyDir of this size at most).
    scratch_size: str = "8Gi"
    #: A step's pod that has not started this long after its creation (unschedulable, a workspace
    #: that never binds, an image that cannot be pulled) ends the attempt.
    pending_deadline_seconds: int = 600
    #: Deadlines of the stage and collect pods (their credentials last as long).
    stage_deadline_seconds: int = 1800
    collect_deadline_seconds: int = 900
    #: Seconds a step keeps retrying while the object store is unavailable before it gives up.
    store_retry_seconds: int = 120
    #: results.json larger than this is not copied into status.outputs.results.
    max_inline_results_bytes: int = 64 * 1024
    #: results.json larger than this fails the job with ResultsInvalid.
    max_results_bytes: int = 4 * 1024**2
    #: A plug-in writing more than this to out/ fails with reason OutputTooLarge.
    max_output_bytes: int = 1024**3
    max_output_files: int = 10000
    #: The plug-in's stdout kept as plugin-log.txt (the start of it, when longer).
    max_log_bytes: int = 16 * 1024**2
    #: User and group the plug-in runs as (never root).
    plugin_uid: int = 65532
    #: The plug-in's writable /tmp, and its ephemeral-storage limit when the Plugin sets none.
    plugin_tmp_size: str = "1Gi"
    plugin_ephemeral_storage: str = "2Gi"
    #: Seconds between two reads of a running plug-in's log tail for its progress lines.
    progress_interval: float = 5.0
    #: Node labels of GPU nodes ("nvidia.com/gpu.present=true"): a job whose Plugin asks for
    #: GPUs runs all its pods there, so its node-local workspace is made where the GPU is.
    gpu_node_selector: str = ""
    #: What a plug-in pod gets when its Plugin says nothing (never a BestEffort pod).
    plugin_cpu_request: str = "250m"
    plugin_memory_request: str = "256Mi"
    plugin_memory_limit: str = "2Gi"
    #: RuntimeClass of plug-in pods whose Plugin names none ("" = the cluster's default runtime).
    plugin_runtime_class: str = ""
    #: Refuse Plugins whose image is not pinned by digest (image@sha256:...).
    require_image_digest: bool = False
    #: The isolation proof: each attempt's timeout, and how long doors may take to close.
    probe_timeout_seconds: float = 0.5
    isolation_wait_seconds: float = 10.0
    #: The proof watches at least this long: an enforcer that drops a new pod's traffic until it
    #: knows the pod opens whatever allow policy matches only then. (kube-router, on the local
    #: cluster, races the other way: a new pod is unpoliced for about half a second.)
    isolation_settle_seconds: float = 2.0
    #: More host:port doors the proof must find closed, comma-separated (e.g. a proxy).
    extra_probes: str = ""
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
    cache_max_age_seconds: int = 30 * 24 * 3600
    #: When the cache holds more than this, the least recently used entries go first.
    cache_max_bytes: int = 50 * 1024**3
    cache_sweep_seconds: int = 600
    #: Every job is re-examined at least this often (seconds), besides reacting to events.
    reconcile_interval: float = 5.0
    #: Port of /metrics and /healthz.
    metrics_port: int = 8080
    #: Only the holder of a Lease in this namespace runs (standby replicas wait).
    leader_election: bool = True
    #: Namespaces whose PluginJobs this operator runs ("a,b"; "" = every namespace). The chart
    #: then binds its namespaced permissions in these namespaces only (operator.watchNamespaces).
    watch_namespaces: str = ""
    namespace: str = "kubecircus-system"
    lease_name: str = "kubecircus-operator"
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
