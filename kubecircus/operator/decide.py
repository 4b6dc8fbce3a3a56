"""Reconcile decisions: ``(job, plugin, children, config, now) -> actions``. Pure, table-tested.

The engine (``engine.py``) reads the job's world, calls :func:`reconcile`, and applies the
actions it returns (``kube.py`` for the API server, ``storeops.py`` for the object store).
Phases move only forward: Queued → Staging → Running → Collecting → Succeeded, or to
Failed/Cancelled from anywhere; a resubmit is the one way back to Queued. Inside the active
phases the step decisions are in ``steps.py``; the building blocks in ``transitions.py``.
"""

from __future__ import annotations

from datetime import datetime

from kubecircus.objectstore import layout
from kubecircus.timestamps import parse

from . import builders, steps
from .actions import Create, Delete, DeleteObjects, Event, PatchStatus, Plan, SetFinalizer, Warn
from .api import FINISHED_PHASES, Phase, Plugin, PluginJob
from .config import OperatorConfig
from .observe import Children, PodView
from .transitions import Situation, cleanup, fail, finish, forget_credentials, retry, timestamp, transition

RESUBMIT_ANNOTATION = "kubecircus.io/resubmit"
#: Kept on every job: deleting it first deletes its outputs in the object store.
FINALIZER = "kubecircus.io/outputs"
PHASE_POD = {Phase.STAGING: "stage", Phase.RUNNING: "run", Phase.COLLECTING: "collect"}
#: A pod still terminating this long after its deletion is on a node that is gone: force it.
STUCK_TERMINATING_SECONDS = 120
#: Pod-level reasons that mean the node or the cluster failed, not the job.
INFRASTRUCTURE_REASONS = frozenset(
    {
        "Evicted",
        "NodeLost",
        "Shutdown",
        "NodeShutdown",
        "Terminated",
        "UnexpectedAdmissionError",
        "OutOfcpu",
        "OutOfmemory",
        "Preempting",
    }
)


def admit(job: PluginJob, plugin: Plugin, now: datetime) -> PatchStatus:
    """Queued → Staging, when the scheduler finds a slot (``queue.plan_queue``). The Plugin is
    snapshot into the status: an edited, deleted or recreated Plugin never changes what an
    admitted job runs or how its results are checked."""
    return transition(
        job,
        Phase.STAGING,
        now,
        "Admitted",
        "a slot is free; staging inputs",
        {
            "startTime": timestamp(now),
            "queuePosition": None,
            "launched": None,
            "pluginSpec": plugin.spec.model_dump(by_alias=True, exclude_none=True),
        },
    )


def plugin_of(job: PluginJob, registered: Plugin | None) -> Plugin | None:
    """What the job runs: its admission snapshot once admitted, else the registered Plugin."""
    if job.status.plugin_spec is not None:
        return Plugin(metadata={"name": job.spec.plugin}, spec=job.status.plugin_spec)
    return registered


def reconcile(
    job: PluginJob, plugin: Plugin | None, children: Children, config: OperatorConfig, now: datetime
) -> Plan:
    """The one decision for a job: what to do now, given what is observed.

    ``plugin`` is the registered Plugin of that name (None when there is none); an admitted job
    runs its snapshot instead. ``children`` are the job's pods, workspace and policy as seen
    now. Returns actions for the engine to apply in order; an empty plan means "nothing to do".
    """
    plugin = plugin_of(job, plugin)
    s = Situation(job, plugin, children, config, now)
    if job.metadata.get("deletionTimestamp"):
        return _deleting(s)
    phase = Phase(job.status.phase) if job.status.phase else None
    if phase in FINISHED_PHASES:
        return _finished(s)
    if job.spec.cancel:
        return finish(s, Phase.CANCELLED, "Cancelled", "cancelled by spec.cancel")
    if phase in (None, Phase.QUEUED):
        why = refusal(s)
        if why:
            return fail(s, *why)
    if phase is None:
        plan = Plan().add(
            Create(builders.namespace_policy(job.namespace)),
            SetFinalizer(True),
            transition(job, Phase.QUEUED, now, "Submitted", "waiting for a free slot", {"attempt": 0}),
        )
        cap = config.priority_cap(job.namespace)
        if job.spec.priority > cap:
            message = f"spec.priority {job.spec.priority} counts as {cap}, this namespace's highest"
            plan.add(Warn(Event("Warning", "PriorityCapped", message)))
        return plan
    if plugin is None:
        return fail(
            s, "PluginNotFound", f"no Plugin named '{job.spec.plugin}' (kubectl get plugins lists them)"
        )
    if phase == Phase.QUEUED:
        return Plan()  # admission is the scheduler's (see queue.py)
    role = PHASE_POD[phase]
    pod = children.pods.get(role)
    if pod is None:
        return steps.launch(s, phase, role)
    if pod.deleting:
        if _stuck_terminating(pod, now):
            return Plan().add(Delete("Pod", pod.name, grace=0))  # its node is gone: let it go
        return Plan()  # wait until it is gone
    waiting_since = _waiting_since(job, phase, pod)
    if (
        not pod.started
        and waiting_since
        and (now - waiting_since).total_seconds() > config.pending_deadline_seconds
    ):
        return _never_started(s, phase, role, pod)
    if role == "run" and pod.reason == "Evicted" and _own_disk_use(pod.message):
        return fail(s, "StorageLimitExceeded", f"the plug-in was evicted for its own disk use: {pod.message}")
    if _infrastructure_failure(pod):
        why = f"pod {pod.name} failed: {pod.reason or 'node lost'} {pod.message or ''}".strip()
        return retry(s, phase, role, why)
    judge = {Phase.STAGING: steps.staging, Phase.RUNNING: steps.running, Phase.COLLECTING: steps.collecting}
    return judge[phase](s, pod)


def refusal(s: Situation) -> tuple[str, str] | None:
    """Why a job may never run: checked while it waits and again when its inputs are staged
    (inputs stay editable while a job is Queued)."""
    buckets = s.config.input_bucket_names
    for index, item in enumerate(s.job.spec.inputs):
        why = layout.input_refusal(s.job.namespace, item.source.bucket, item.source.prefix, buckets)
        if why:
            return "InputForbidden", f"input {index}: {why}"
    if s.config.require_image_digest and s.plugin is not None and "@sha256:" not in s.plugin.spec.image:
        return (
            "ImageNotPinned",
            f"Plugin {s.job.spec.plugin} names image {s.plugin.spec.image}; this cluster runs only "
            "plug-in images pinned by digest (image@sha256:...)",
        )
    return None


def refused(
    job: PluginJob,
    plugin: Plugin | None,
    children: Children,
    config: OperatorConfig,
    now: datetime,
    kind: str,
    message: str,
    name_conflict: bool = False,
) -> Plan:
    """The API server refused a child of an active job. A full quota may free up: an
    infrastructure retry. Anything else (Pod Security, an admission policy or webhook, an
    invalid object) will not change by trying again: the job fails with the API server's words.
    A child's name taken by an object that is not the job's fails it as ``NameConflict``. A
    quota refusal while the previous step's pod is still there only waits for it to go."""
    s = Situation(job, plugin, children, config, now)
    phase = Phase(job.status.phase) if job.status.phase else Phase.QUEUED
    role = PHASE_POD.get(phase, "stage")
    if name_conflict:
        return fail(s, "NameConflict", message)
    if "exceeded quota" in message:
        ending = [p for name, p in children.pods.items() if name != role and (p.completed or p.deleting)]
        if ending:
            # the step before is done (its containers exited) but its pod still counts against
            # the quota until the kubelet ends it: its update or removal brings the next round
            return Plan().add(*(Delete("Pod", p.name, grace=0) for p in ending if _stuck_terminating(p, now)))
        return retry(s, phase, role, f"the namespace's quota refused the {kind}: {message}")
    return fail(s, "CreateRefused", f"the API server refused the job's {kind}: {message}")


def pending_resubmit(job: PluginJob) -> str | None:
    """The resubmit annotation's value when it has not been acted on yet."""
    wanted = job.metadata.get("annotations", {}).get(RESUBMIT_ANNOTATION)
    return wanted if wanted and wanted != job.status.resubmitted else None


def _deleting(s: Situation) -> Plan:
    """``kubectl delete pluginjob``: stop the plug-in at once, then delete the outputs.

    The run pod is killed (``transitions.KILL_GRACE``) and the job's deny-all policy stays until no pod is
    left; the objects under ``jobs/<ns>/<uid>/`` go before the finalizer is removed (if the
    store is gone for good: docs/operator.md, "Deleting a job when the store is gone").
    """
    if FINALIZER not in s.job.metadata.get("finalizers", []):
        return Plan()
    plan = Plan().add(*cleanup(s.children, s.job))
    if s.children.pods:
        return plan  # the next event (a pod gone) continues
    return plan.add(
        *forget_credentials(s.job),
        DeleteObjects(layout.job_prefix(s.job.namespace, s.job.uid)),
        SetFinalizer(False),
    )


def _finished(s: Situation) -> Plan:
    job = s.job
    plan = Plan().add(*cleanup(s.children, job))
    wanted = pending_resubmit(job)
    if wanted is None:
        return plan
    phase = Phase(job.status.phase)
    if phase == Phase.SUCCEEDED:
        return plan.add(
            PatchStatus(
                {"resubmitted": wanted},
                Event(
                    "Warning", "ResubmitRefused", "a Succeeded job is not resubmitted; create a new PluginJob"
                ),
            )
        )
    if job.spec.cancel:
        return plan.add(
            Warn(
                Event(
                    "Warning",
                    "ResubmitRefused",
                    "spec.cancel is still true: set it to false, then annotate again",
                )
            )
        )
    reset = {
        "resubmitted": wanted,
        "attempt": 0,
        "exitCode": None,
        "startTime": None,
        "completionTime": None,
        "outputs": None,
        "inputs": None,
        "launched": None,
        "retryAfter": None,
        "logTail": None,
        "logRef": None,
        "pluginImageID": None,
        "pluginSpec": None,  # admitted again, it runs the Plugin as registered then
    }
    return plan.add(
        DeleteObjects(layout.job_prefix(job.namespace, job.uid)),  # a new run, new outputs
        transition(
            job, Phase.QUEUED, s.now, "Resubmitted", f"resubmitted ({RESUBMIT_ANNOTATION}={wanted})", reset
        ),
    )


def _never_started(s: Situation, phase: Phase, role: str, pod: PodView) -> Plan:
    """A pod still Pending past jobs.pendingDeadlineSeconds. The plug-in pod's needs (GPUs,
    memory) come from its Plugin: a scheduler that cannot place it will not place it on the
    next try either. Anything else (a workspace that does not bind, a worker image that cannot
    be pulled) is the cluster's: an infrastructure retry, in the scheduler's or kubelet's words."""
    why = pod.waiting() or "no reason given"
    waited = s.config.pending_deadline_seconds
    if role == "run" and pod.unschedulable:
        return fail(s, "Unschedulable", f"the plug-in pod could not be placed for {waited} s: {why}")
    return retry(s, phase, role, f"pod {pod.name} did not start within {waited} s: {why}")


def _waiting_since(job: PluginJob, phase: Phase, pod: PodView) -> datetime | None:
    """Since when a pod that has not started counts as late: its creation, or for a plug-in
    pod made early, the phase's start (it may wait behind staging for good reasons)."""
    current = [c for c in job.status.conditions if c.type == phase.value and c.status == "True"]
    entered = current[-1].last_transition_time if current else None
    since = parse(entered) if entered else None
    if pod.created is None or since is None:
        return pod.created
    return max(pod.created, since)


def _stuck_terminating(pod: PodView, now: datetime) -> bool:
    """Deleted longer ago than any kubelet takes to end a pod: its node is gone."""
    return bool(pod.deleted_at and (now - pod.deleted_at).total_seconds() > STUCK_TERMINATING_SECONDS)


def _own_disk_use(message: str | None) -> bool:
    """The kubelet's words when a pod passed its own ephemeral-storage or emptyDir limit (not
    when the node ran short: "The node was low on resource")."""
    text = (message or "").lower()
    return "exceed" in text and "node was low" not in text


def _infrastructure_failure(pod: PodView) -> bool:
    return pod.phase == "Unknown" or (pod.phase == "Failed" and (pod.reason or "") in INFRASTRUCTURE_REASONS)
