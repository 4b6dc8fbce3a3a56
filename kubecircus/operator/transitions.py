"""The building blocks of every decision: moving a job to a phase, failing it, retrying a step,
and tidying up its children. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kubecircus.timestamps import stamp

from . import builders
from .actions import Action, Delete, Event, PatchStatus, Plan
from .api import FINISHED_PHASES, Phase, Plugin, PluginJob
from .config import OperatorConfig
from .observe import Children

PROGRESS = {Phase.QUEUED: 0.0, Phase.STAGING: 0.1, Phase.RUNNING: 0.3, Phase.COLLECTING: 0.9}
#: Infrastructure retries wait 5 s, 10 s, 20 s, ... before launching again.
RETRY_BASE_SECONDS = 5
#: Pods whose step holds store credentials (a Secret of the same step).
CREDENTIAL_STEPS = ("stage", "collect")
MAX_MESSAGE = 1024


@dataclass(frozen=True)
class Situation:
    """Everything one decision looks at."""

    job: PluginJob
    plugin: Plugin | None
    children: Children
    config: OperatorConfig
    now: datetime


timestamp = stamp  # the name the decision modules use


#: Grace for killing a job's pods: one second, never zero. A pod deleted with grace 0 leaves the
#: API at once, while the kubelet is still killing its processes, and the NetworkPolicy enforcer
#: stops policing an address it no longer sees: a plug-in would get a moment of network. With a
#: grace the pod stays (terminating, still policed) until the kubelet reports it dead; a
#: plug-in that traps SIGTERM gains one second, without network.
KILL_GRACE = 1


def bounded(text: str, limit: int = MAX_MESSAGE) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 12] + " [...cut]"


def transition(
    job: PluginJob,
    phase: Phase,
    now: datetime,
    reason: str,
    message: str,
    extra: dict[str, Any] | None = None,
    event_type: str = "Normal",
) -> PatchStatus:
    """Move to ``phase``: the new condition True, the previous phase's condition False, an Event."""
    stamp = timestamp(now)
    message = bounded(message)
    conditions = [c.model_dump(by_alias=True, exclude_none=True) for c in job.status.conditions]
    for condition in conditions:
        if condition["status"] == "True" and condition["type"] != phase.value:
            condition.update(status="False", lastTransitionTime=stamp)
    conditions = [c for c in conditions if c["type"] != phase.value]
    conditions.append(
        {
            "type": phase.value,
            "status": "True",
            "reason": reason,
            "message": message,
            "lastTransitionTime": stamp,
        }
    )
    patch: dict[str, Any] = {
        "phase": phase.value,
        "reason": reason,
        "message": message,
        "conditions": conditions,
    }
    if job.metadata.get("generation"):
        patch["observedGeneration"] = job.metadata["generation"]  # the spec this was decided on
    if phase in PROGRESS:
        patch["progress"] = PROGRESS[phase]
    if phase == Phase.SUCCEEDED:
        patch["progress"] = 1.0
    if phase == Phase.QUEUED:
        patch["queuedAt"] = stamp  # a resubmitted job queues behind those already waiting
    if phase in FINISHED_PHASES:
        patch["completionTime"] = stamp
        patch["queuePosition"] = None
    if extra:
        patch.update(extra)
    return PatchStatus(patch, Event(event_type, reason, f"{phase.value}: {message}"))


def moved_job(job: PluginJob, patch: dict[str, Any]) -> PluginJob:
    """The job as it reads once the status merge-patch ``patch`` is written (a None removes)."""
    status = {**job.status.model_dump(by_alias=True, exclude_none=True), **patch}
    body = {"metadata": job.metadata, "spec": job.spec.model_dump(by_alias=True, exclude_none=True)}
    return PluginJob.from_body({**body, "status": {k: v for k, v in status.items() if v is not None}})


def forget_credentials(job: PluginJob, *steps: str) -> list[Action]:
    """Delete step Secrets. The operator never reads Secrets (it may only create and delete
    them), so these deletes are issued where a step ends, before the status moves on."""
    return [Delete("Secret", builders.secret_name(job, step)) for step in steps or CREDENTIAL_STEPS]


def cleanup(children: Children, job: PluginJob) -> list[Action]:
    """Remove what the job still has: pods first, at once; the policy only once no pod is left."""
    actions: list[Action] = [
        Delete("Pod", pod.name, grace=KILL_GRACE) for pod in children.pods.values() if not pod.deleting
    ]
    if children.workspace:
        actions.append(Delete("PersistentVolumeClaim", builders.child_name(job, "ws")))
    if children.policy and not children.pods:
        actions.append(Delete("NetworkPolicy", builders.child_name(job, "isolation")))
    return actions


def finish(
    s: Situation, phase: Phase, reason: str, message: str, extra: dict[str, Any] | None = None
) -> Plan:
    kind = "Normal" if phase == Phase.SUCCEEDED else "Warning"
    return Plan().add(
        *forget_credentials(s.job),
        transition(s.job, phase, s.now, reason, message, extra, kind),
        *cleanup(s.children, s.job),
    )


def fail(s: Situation, reason: str, message: str, extra: dict[str, Any] | None = None) -> Plan:
    return finish(s, Phase.FAILED, reason, message, extra)


def retry(s: Situation, phase: Phase, role: str, why: str) -> Plan:
    """An infrastructure failure: launch the step again after a backoff, up to maxAttempts."""
    attempt = s.job.status.attempt + 1
    if attempt >= s.config.max_attempts:
        return fail(
            s, "InfrastructureFailure", f"{why}; gave up after {attempt} attempts", {"attempt": attempt}
        )
    wait = RETRY_BASE_SECONDS * 2 ** (attempt - 1)
    plan = Plan().add(
        PatchStatus(
            {
                "attempt": attempt,
                "launched": None,
                "retryAfter": timestamp(s.now + timedelta(seconds=wait)),
                "reason": "Retrying",
                "message": bounded(f"{why}; attempt {attempt + 1} of {s.config.max_attempts}"),
            },
            Event("Warning", "Retrying", bounded(f"{why}; launching again in {wait} s")),
        )
    )
    # the step's pod, and any later step's: ``steps.advance`` makes the next pod before the move
    # is written, and a replay after a crash may find it there with this step's pod gone
    for later in builders.ROLES[builders.ROLES.index(role) :]:
        pod = s.children.pods.get(later)
        if pod is not None and not pod.deleting:
            plan.add(Delete("Pod", pod.name, grace=KILL_GRACE))
    return plan


def effective_timeout(job: PluginJob, plugin: Plugin) -> int:
    limit = plugin.spec.timeout_seconds
    return min(job.spec.timeout_seconds, limit) if job.spec.timeout_seconds else limit
