"""The kubecircus.io/v1alpha1 API: Plugin and PluginJob, as pydantic models.

These models are the one source of truth: ``kubecircus crds`` generates ``crds/*.yaml`` (and the
Helm chart's copy) from them, with every field's description for ``kubectl explain``, and the
operator parses what it reads from the API server with them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

GROUP = "kubecircus.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

#: CIRCUS CS's default plug-in timeout.
DEFAULT_TIMEOUT_SECONDS = 3000
RANGE_PATTERN = r"^[0-9]+:[0-9]+:-?[1-9][0-9]*$"
_NUMBER = r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
#: A Kubernetes resource quantity (what resources.limits.memory accepts).
QUANTITY = {
    "x-kubernetes-int-or-string": True,
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "pattern": rf"^(\+|-)?{_NUMBER}(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?{_NUMBER}))?$",
}


class Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", use_enum_values=True)


def camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


class CamelModel(Model):
    model_config = ConfigDict(
        populate_by_name=True, extra="forbid", alias_generator=camel, use_enum_values=True
    )


# --- Plugin ---------------------------------------------------------------------------------


class ResourceList(CamelModel):
    cpu: str | int | None = Field(None, description="CPU, e.g. 500m or 2.", json_schema_extra=QUANTITY)
    memory: str | int | None = Field(
        None, description="Memory, e.g. 512Mi or 4Gi.", json_schema_extra=QUANTITY
    )
    ephemeral_storage: str | int | None = Field(
        None,
        alias="ephemeral-storage",
        description="Node-local disk (the writable /tmp and logs), e.g. 2Gi.",
        json_schema_extra=QUANTITY,
    )


class Resources(CamelModel):
    requests: ResourceList | None = Field(None, description="What the plug-in pod is guaranteed.")
    limits: ResourceList | None = Field(None, description="What the plug-in pod may use at most.")


class Toleration(CamelModel):
    key: str | None = Field(None, description="The taint key tolerated (empty with Exists: every taint).")
    operator: Literal["Exists", "Equal"] = Field("Equal", description="Exists or Equal.")
    value: str | None = Field(None, description="The taint value, with Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="The taint effect tolerated (empty: every effect)."
    )
    toleration_seconds: int | None = Field(None, description="With NoExecute: how long the pod may stay.")


class PluginSpec(CamelModel):
    """What a plug-in is and how it runs: the CRD's schema is generated from this model
    (``kubecircus crds``), so these descriptions are what ``kubectl explain plugin.spec`` shows."""

    image: str = Field(
        description="Container image of the plug-in (a CIRCUS CS plug-in image runs unmodified). "
        "Pin it by digest in production.",
        min_length=1,
    )
    version: str = Field(
        description="Semantic version of the plug-in, e.g. 1.0.0.",
        pattern=r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$",
    )
    description: str | None = Field(None, description="What the plug-in does, for people choosing one.")
    command: list[str] | None = Field(
        None, description="Overrides the image's entrypoint (CIRCUS CS plug-ins normally leave it unset)."
    )
    args: list[str] | None = Field(None, description="Arguments to the entrypoint.")
    timeout_seconds: int = Field(
        DEFAULT_TIMEOUT_SECONDS,
        ge=1,
        le=604800,
        description="Longest a run may take before it fails with reason Timeout (CIRCUS CS: 3000).",
    )
    max_concurrent: int | None = Field(
        None, ge=1, description="At most this many jobs of this plug-in run at once (unset: no own limit)."
    )
    resources: Resources | None = Field(None, description="CPU and memory of the plug-in pod.")
    gpus: int = Field(0, ge=0, le=16, description="NVIDIA GPUs the plug-in pod requests (nvidia.com/gpu).")
    node_selector: dict[str, str] | None = Field(
        None,
        description="Node labels the plug-in pod needs (e.g. a GPU model). A job's stage and collect "
        "pods follow them too, so a node-local workspace is made where the plug-in can run.",
    )
    tolerations: list[Toleration] | None = Field(
        None, description="Taints the plug-in pod tolerates (e.g. dedicated GPU nodes); its steps' pods too."
    )
    runtime_class_name: str | None = Field(
        None,
        description="RuntimeClass of the plug-in pod, e.g. a gVisor or Kata sandbox the cluster offers "
        "(default: the chart's jobs.runtimeClassName).",
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
    )
    results_schema: dict[str, Any] | None = Field(
        None,
        description="Optional JSON Schema that results.json must satisfy; otherwise the job fails "
        "with reason ResultsInvalid.",
        json_schema_extra={"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    )
    display: str | None = Field(None, description="Display hint for result viewers, e.g. LesionCandidates.")


# --- PluginJob --------------------------------------------------------------------------------


class Phase(StrEnum):
    QUEUED = "Queued"
    STAGING = "Staging"
    RUNNING = "Running"
    COLLECTING = "Collecting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


ACTIVE_PHASES = frozenset({Phase.STAGING, Phase.RUNNING, Phase.COLLECTING})
FINISHED_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED})


class ObjectStoreSource(CamelModel):
    bucket: str = Field(description="Bucket holding the series' .dcm files.", min_length=3, max_length=63)
    prefix: str = Field("", description="Key prefix of the series, e.g. study1/series3/.", max_length=1024)


class Input(CamelModel):
    source: ObjectStoreSource = Field(description="Where the DICOM series is read from.")
    series_instance_uid: str | None = Field(
        None,
        alias="seriesInstanceUID",
        description="The series to use when the source holds several.",
        pattern=r"^[0-9.]{1,64}$",
        max_length=64,
    )
    range: str | None = Field(
        None,
        description="Images by InstanceNumber as START:END:DELTA (DELTA may be negative), written "
        "in that order; CIRCUS CS's partial volume descriptor.",
        pattern=RANGE_PATTERN,
        max_length=40,
    )


class PluginJobSpec(CamelModel):
    """What a user asks for: a plug-in and its input series, plus the knobs they may turn while
    the job waits (priority, suspend) or at any time (cancel). CEL rules in the CRD keep the rest
    immutable once the job has left the queue."""

    plugin: str = Field(description="Name of the Plugin to run.", min_length=1, max_length=253)
    priority: int = Field(
        0,
        ge=-1000,
        le=1000,
        description="Higher runs first; equal priorities run in creation order. The cluster may cap "
        "it (the chart's queue.maxPriority, per namespace queue.namespaceMaxPriority): a capped "
        "job gets a PriorityCapped Event.",
    )
    suspend: bool = Field(False, description="A suspended job stays Queued until this is false again.")
    cancel: bool = Field(
        False, description="true cancels the job: from Queued, or while running (its pods are deleted)."
    )
    invalidated: bool = Field(
        False,
        description="Marks a Succeeded job's results as invalid (CIRCUS CS 'invalidated'); allowed "
        "only after the job succeeded.",
    )
    timeout_seconds: int | None = Field(
        None, ge=1, description="Shorter timeout for this job; never above the plug-in's timeoutSeconds."
    )
    inputs: list[Input] = Field(
        description="The input series; the list index is the CIRCUS CS volume id (0, 1, 2, ...).",
        min_length=1,
        max_length=32,
    )


class Condition(CamelModel):
    type: str = Field(description="The phase or fact this condition reports.")
    status: str = Field(description="True, False or Unknown.")
    reason: str | None = Field(None, description="Machine-readable reason.")
    message: str | None = Field(None, description="What happened, for people.")
    last_transition_time: str | None = Field(None, description="When the status last changed (RFC 3339).")


class InputStatus(CamelModel):
    volume_id: int = Field(alias="id", description="The volume id: in/{id}.mhd, .raw, .json.")
    fingerprint: str | None = Field(None, description="The cache key of the converted volume.")
    cache_hit: bool | None = Field(None, description="true when the volume came from the cache.")
    size: list[int] | None = Field(None, description="Volume size in voxels (x, y, z).")
    spacing: list[float] | None = Field(None, description="Voxel spacing in mm (x, y, z).")
    bytes: int | None = Field(None, description="Bytes transferred to stage this input.")
    seconds: float | None = Field(None, description="Seconds spent staging this input.")


class Outputs(CamelModel):
    bucket: str | None = Field(None, description="Bucket the outputs were stored in.")
    prefix: str | None = Field(None, description="Key prefix of this job's outputs (out/ files below it).")
    manifest: str | None = Field(
        None, description="Key of manifest.json: every output file with size, sha256 and content type."
    )
    manifest_sha256: str | None = Field(
        None, alias="manifestSha256", description="sha256 of manifest.json as collect stored it."
    )
    file_count: int | None = Field(None, description="Files the plug-in wrote to out/.")
    total_bytes: int | None = Field(None, description="Their total size in bytes.")
    results: dict[str, Any] | None = Field(
        None,
        description="results.json, inline when small (the chart's jobs.maxInlineResultsBytes).",
        json_schema_extra={"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    )


class LogRef(CamelModel):
    bucket: str = Field(description="Bucket of the stored log.")
    key: str = Field(
        description="Key of plugin-log.txt: the plug-in's stdout (its start, when it "
        "was longer than the chart's jobs.maxLogBytes, with a closing line saying so)."
    )


class PluginJobStatus(CamelModel):
    """Everything the operator knows of a job: written only by it (the status subresource), read
    back on every decision, so an operator restart loses nothing. Unknown fields are ignored, so
    an older operator can read a newer one's status."""

    model_config = ConfigDict(
        populate_by_name=True, extra="ignore", alias_generator=camel, use_enum_values=True
    )

    phase: Phase | None = Field(
        None,
        description="Where the job is: Queued, Staging, Running, Collecting, Succeeded, Failed or Cancelled.",
    )
    queue_position: int | None = Field(None, description="1 runs next; unset when not waiting.")
    queued_at: str | None = Field(
        None,
        description="When the job last entered the queue (submitted or resubmitted): its place among "
        "jobs of equal priority (RFC 3339).",
    )
    progress: float | None = Field(None, ge=0, le=1, description="Rough progress from 0 to 1.")
    reason: str | None = Field(None, description="Why the job is in its phase (e.g. Timeout, ExitCode).")
    message: str | None = Field(None, description="Details for people.")
    exit_code: int | None = Field(None, description="The plug-in's exit code, once it ran.")
    attempt: int = Field(0, description="Infrastructure retries used (evicted pods, lost nodes).")
    start_time: str | None = Field(None, description="When the job was admitted (RFC 3339).")
    completion_time: str | None = Field(None, description="When the job finished (RFC 3339).")
    launched: str | None = Field(
        None, description="The phase whose pod was last launched (a launched pod that vanished was lost)."
    )
    retry_after: str | None = Field(
        None, description="After an infrastructure failure, the pod is launched again no sooner than this."
    )
    resubmitted: str | None = Field(
        None, description="The kubecircus.io/resubmit annotation value last acted on."
    )
    log_tail: str | None = Field(None, description="The end of the plug-in's stdout (4 KiB at most).")
    log_ref: LogRef | None = Field(None, description="Where the plug-in's whole stdout is stored.")
    plugin_image_id: str | None = Field(
        None,
        alias="pluginImageID",
        description="The image that actually ran, by digest (from the pod's imageID): every result "
        "traces to one plug-in build.",
    )
    plugin_spec: PluginSpec | None = Field(
        None,
        description="The Plugin as it was when the job was admitted: what the job runs, whatever "
        "later happens to the Plugin (edited, deleted, recreated).",
    )
    conditions: list[Condition] = Field(default_factory=list, description="Phase history.")
    inputs: list[InputStatus] | None = Field(None, description="How each input was staged.")
    outputs: Outputs | None = Field(
        None, description="What the plug-in produced (the file list is in the manifest)."
    )
    observed_generation: int | None = Field(
        None, description="metadata.generation of the spec the last phase change was decided on."
    )


class PluginJob(Model):
    """A parsed PluginJob (metadata kept as the raw dict)."""

    metadata: dict[str, Any]
    spec: PluginJobSpec
    status: PluginJobStatus = Field(default_factory=PluginJobStatus)

    @property
    def name(self) -> str:
        return self.metadata["name"]

    @property
    def namespace(self) -> str:
        return self.metadata["namespace"]

    @property
    def uid(self) -> str:
        return self.metadata["uid"]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def created(self) -> str:
        return self.metadata.get("creationTimestamp", "")

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> PluginJob:
        return cls.model_validate(
            {
                "metadata": dict(body["metadata"]),
                "spec": dict(body["spec"]),
                "status": dict(body.get("status") or {}),
            }
        )


class Plugin(Model):
    """A registered plug-in (cluster-scoped, written by admins); a job runs the snapshot taken
    at its admission (``status.pluginSpec``), not the live object."""

    metadata: dict[str, Any]
    spec: PluginSpec

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Plugin:
        return cls.model_validate({"metadata": dict(body["metadata"]), "spec": dict(body["spec"])})
