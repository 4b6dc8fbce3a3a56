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
    #: Launches of a phase's pod after infrastructure failures (evictions, lost nodes) before Failed.
    max_attempts: int = 3
    #: Finished jobs are deleted this long after completion (0: never).
    history_ttl_seconds: int = 7 * 24 * 3600
    #: At most this many finished jobs are kept, oldest deleted first (Orthanc's JobsHistorySize).
    history_size: int = 1000
    #: Image of the trusted staging and collecting pods.
    worker_image: str = "localhost/kubecircus/toolbox:dev"
    #: StorageClass of the per-job workspace volume ("" = the cluster's default).
    storage_class: str = ""
    workspace_size: str = "1Gi"
    #: results.json larger than this is not copied into status.outputs.results.
    max_inline_results_bytes: int = 64 * 1024
    #: A plug-in writing more than this to out/ fails with reason OutputTooLarge.
    max_output_bytes: int = 1024**3
    #: User and group the plug-in runs as (never root).
    plugin_uid: int = 65532
    #: Every job is re-examined at least this often (seconds), besides reacting to events.
    reconcile_interval: float = 5.0
    #: Port of /metrics and /healthz.
    metrics_port: int = 8080
    #: Only the holder of a Lease in this namespace runs (standby replicas wait).
    leader_election: bool = True
    namespace: str = "kubecircus-system"
    lease_name: str = "kubecircus-operator"
    #: Identity of this replica (the pod name in the chart).
    identity: str = ""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> OperatorConfig:
        """``KUBECIRCUS_<FIELD>`` for every field, e.g. ``KUBECIRCUS_MAX_CONCURRENT_JOBS=2``."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"KUBECIRCUS_{f.name.upper()}")
            if raw is None:
                continue
            kind = type(f.default)
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
            config = cls(**{**values, "identity": env.get("POD_NAME") or os.uname().nodename})  # type: ignore[arg-type]
        if config.max_concurrent_jobs < 1 or config.max_attempts < 1:
            raise ValueError("KUBECIRCUS_MAX_CONCURRENT_JOBS and KUBECIRCUS_MAX_ATTEMPTS must be at least 1")
        return config
