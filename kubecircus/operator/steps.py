"""Decisions inside the active phases: launching each step's pod and judging how it ended. Pure.

The trusted steps are judged by the worker contract (``kubecircus.worker.report``): a job fault
(``InputInvalid``, ``OutputTooLarge``, ...) fails the job with the step's message; an outage or
crash of the step is an infrastructure retry. The plug-in is judged by its container alone.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime
from typing import Any

from kubecircus.objectstore import layout, policy
from kubecircus.worker.report import JOB_FAULTS, Report, decode

from . import builders, pods
from .actions import (
    Action,
    Create,
    Delete,
    Event,
    MintCredentials,
    PatchStatus,
    Plan,
    ShortenDeadline,
    StoreLog,
    Warn,
)
from .api import Phase
from .observe import IMAGE_UNAVAILABLE, PodView
from .transitions import (
    PROGRESS,
    Situation,
    effective_timeout,
    fail,
    finish,
    forget_credentials,
    moved_job,
    retry,
    timestamp,
    transition,
)

LOG_TAIL_BYTES = 4096
INPUT_FIELDS = ("id", "fingerprint", "cacheHit", "size", "spacing", "bytes", "seconds")


def launch(s: Situation, phase: Phase, role: str) -> Plan:
    job = s.job
    if job.status.launched == phase.value:
        return retry(s, phase, role, f"pod {builders.child_name(job, role)} vanished")
    if job.status.retry_after and timestamp(s.now) < job.status.retry_after:
        return Plan()  # backing off after an infrastructure failure
    assert s.plugin is not None
    if phase == Phase.STAGING:  # inputs may have been edited while Queued: the rule again, now
        from .decide import refusal

        why = refusal(s)
        if why:
            return fail(s, *why)
    if s.children.workspace_terminating:
        return Plan()  # the previous run's workspace is going; the next event continues
    actions, made = pod_actions(s, phase)
    # the pod first: a create the API server refuses never leaves a "launched" behind to be
    # mistaken for a lost pod; a crash before the status patch finds the pod there and adopts it
    return Plan().add(*actions, *([PatchStatus({"launched": phase.value})] if made else []))


def advance(s: Situation, moved: PatchStatus, phase: Phase, *after: Action) -> Plan:
    """Move into ``phase`` (``moved``, its transition) and launch its pod with one status write.

    The pod is created first, then one patch says both "in ``phase``" and "its pod launched";
    ``after`` (the finished step's pod going) comes last. A crash before the patch finds the
    finished step's pod still there, takes the same decision again and adopts the pod it made
    (its name is fixed per job and step), exactly as ``launch`` does. Where the pod cannot be
    made in this round, only the move is written and ``launch`` makes it next round. A plug-in
    pod made early (``jobs.overlapStaging``) is launched already: only its deadline is cut."""
    ahead = dataclasses.replace(s, job=moved_job(s.job, moved.patch))
    early = s.children.pods.get("run") if phase == Phase.RUNNING else None
    if early is not None:
        if early.deleting:
            return Plan().add(moved, *after)  # the next round waits for it to go, then launches
        # the job's deny-all again if it went meanwhile (the namespace's covers the pod anyway)
        policy = [] if s.children.policy else [Create(builders.isolation_policy(s.job))]
        launched = PatchStatus({**moved.patch, "launched": phase.value}, moved.event)
        return Plan().add(*policy, *early_deadline(s, early), *_clamped(s), launched, *after)
    if s.children.workspace_terminating:
        actions, made = [], False
    else:
        actions, made = pod_actions(ahead, phase)
    if not made or not s.children.workspace:
        return Plan().add(moved, *after)
    launched = PatchStatus({**moved.patch, "launched": phase.value}, moved.event)
    return Plan().add(*actions, launched, *after)


def unlaunched(actions: list[Action]) -> list[Action] | None:
    """For a plan of ``advance`` whose next pod (or its Secret) the API server refused: the
    move alone, without "launched", and what followed it. The refusal is then met again by
    ``launch`` in the new phase and judged there (a full quota retries *that* step), never as
    a failure of the step that has just succeeded. None for any other plan."""
    for index, action in enumerate(actions):
        if isinstance(action, PatchStatus) and "phase" in action.patch and action.patch.get("launched"):
            return [PatchStatus({**action.patch, "launched": None}, action.event), *actions[index + 1 :]]
    return None


def pod_actions(s: Situation, phase: Phase) -> tuple[list[Action], bool]:
    """What makes ``phase``'s pod: its workspace, policy and credentials where missing, then the
    pod; and whether the pod is among them (the plug-in pod waits a round for its policy)."""
    job, config = s.job, s.config
    assert s.plugin is not None
    plan = Plan()
    if not s.children.workspace:
        plan.add(Create(builders.workspace_claim(job, config)))
    if phase == Phase.STAGING and not s.children.policy:
        # made with the workspace: the enforcer has the whole staging step to apply it before a
        # plug-in pod made after staging (an early one relies on its proof's settle time)
        plan.add(Create(builders.isolation_policy(job)))
    if phase == Phase.STAGING:
        inputs = [(i.source.bucket, i.source.prefix) for i in job.spec.inputs]
        stage_policy = policy.stage_policy(job.namespace, inputs, config.store_bucket)
        plan.add(_credentials(s, "stage", stage_policy, config.stage_deadline_seconds))
        stage = Create(pods.stage_pod(job, s.plugin, config))
        if not config.overlap_staging or "run" in s.children.pods:
            return [*plan.actions, stage], True
        # after the stage pod (the plug-in pod prefers its node) and the job's deny-all policy
        early = pods.run_pod(job, s.plugin, config, effective_timeout(job, s.plugin), early=True)
        return [*plan.actions, stage, Create(early, optional=True)], True
    elif phase == Phase.RUNNING:
        if not s.children.policy:  # the deny-all policy must exist before the plug-in pod
            return [*plan.actions, Create(builders.isolation_policy(job))], False
        manifest = pods.run_pod(job, s.plugin, config, effective_timeout(job, s.plugin))
        plan.add(*_clamped(s))
    else:
        collect_policy = policy.collect_policy(job.namespace, job.uid, config.store_bucket)
        plan.add(_credentials(s, "collect", collect_policy, config.collect_deadline_seconds))
        manifest = pods.collect_pod(job, s.plugin, config)
    return [*plan.actions, Create(manifest)], True


def _clamped(s: Situation) -> list[Action]:
    job, plugin = s.job, s.plugin
    assert plugin is not None
    if not job.spec.timeout_seconds or job.spec.timeout_seconds <= plugin.spec.timeout_seconds:
        return []
    message = (
        f"spec.timeoutSeconds {job.spec.timeout_seconds} is above the plug-in's "
        f"{plugin.spec.timeout_seconds}; the plug-in's limit applies"
    )
    return [Warn(Event("Warning", "TimeoutClamped", message))]


def early_deadline(s: Situation, run: PodView) -> list[Action]:
    """An early plug-in pod's deadline once staging is over: the plug-in's timeout from the
    moment staging ended (its stage container's finish, so a replay computes the same), or
    from the pod's start if it started later. Deadlines count from the pod's start."""
    assert s.plugin is not None
    if run.phase in ("Succeeded", "Failed"):
        return []
    if run.started_at is None:
        return [ShortenDeadline(run.name, effective_timeout(s.job, s.plugin))]
    stage = s.children.pods.get("stage")
    container = stage.container("stage") if stage is not None else None
    ended = container.finished_at if container is not None and container.finished_at else s.now
    return [ShortenDeadline(run.name, _timeout_from(s, run.started_at, ended))]


def started_deadline(s: Situation, run: PodView) -> list[Action]:
    """Once ``prepare`` has ended, the plug-in has its timeout from that moment and no more:
    both times come from the run pod's own kubelet, so a replay computes the same. Issued only
    while the pod's deadline is longer (an early pod whose cut at staging's end was missed or
    counted from an earlier moment); the kubelet enforces it."""
    assert s.plugin is not None
    prepare = run.container("prepare")
    if prepare is None or prepare.finished_at is None or run.started_at is None or run.deadline is None:
        return []
    wanted = _timeout_from(s, run.started_at, prepare.finished_at)
    return [ShortenDeadline(run.name, wanted)] if run.deadline > wanted else []


def _timeout_from(s: Situation, started: datetime, moment: datetime) -> int:
    """A deadline (counted from the pod's start, ``started``) giving the plug-in its timeout
    from ``moment``, in whole seconds, never less than the timeout."""
    assert s.plugin is not None
    waited = max(0, math.ceil((moment - started).total_seconds()))
    return effective_timeout(s.job, s.plugin) + waited


def _credentials(s: Situation, step: str, session_policy: str, deadline: int) -> MintCredentials:
    """The step's Secret, minted for ``session_policy``, valid a minute past the pod's deadline."""
    return MintCredentials(builders.credentials_secret(s.job, step), session_policy, deadline + 60)


def step_report(pod: PodView, step: str) -> Report | None:
    """The finished step's report; None until the pod has ended (PodView.ended: a container
    that failed shows in the pod status a moment before the pod's phase, which says why)."""
    if not pod.ended:
        return None
    container = pod.container(step)
    if container is None or not container.terminated:  # killed before it ran (deadline, eviction)
        return decode(step, None, pod.message or pod.reason or "")
    return decode(step, container.exit_code, container.message)


def _step_failed(s: Situation, phase: Phase, role: str, pod: PodView, report: Report) -> Plan:
    if report.reason in JOB_FAULTS:
        return fail(s, report.reason, report.message)
    if pod.reason == "DeadlineExceeded":
        deadline = pod.message or "its deadline"
        return retry(s, phase, role, f"the {role} step ran past its deadline ({deadline})")
    return retry(s, phase, role, f"the {role} step did not finish: {report.reason}: {report.message}")


def staging(s: Situation, pod: PodView) -> Plan:
    report = step_report(pod, "stage")
    if report is None:
        return Plan()
    if not report.ok or not pod.completed:
        return _step_failed(s, Phase.STAGING, "stage", pod, report)
    inputs = [
        {k: item[k] for k in INPUT_FIELDS if k in item}
        for item in report.details.get("inputs", [])
        if isinstance(item, dict)
    ]
    moved = transition(
        s.job,
        Phase.RUNNING,
        s.now,
        "Staged",
        report.message or "inputs staged",
        {"launched": None, "inputs": inputs},
    )
    return Plan().add(
        *forget_credentials(s.job, "stage"),
        *advance(s, moved, Phase.RUNNING, Delete("Pod", pod.name)).actions,
    )


def run_log_tail(log: str) -> str:
    data = log.encode("utf-8", "replace")[-LOG_TAIL_BYTES:]
    return data.decode("utf-8", "ignore")


def running(s: Situation, pod: PodView) -> Plan:
    plugin = s.plugin
    assert plugin is not None
    prepare, main = pod.container("prepare"), pod.container("plugin")
    if prepare is not None and prepare.terminated and prepare.exit_code != 0:
        report = decode("prepare", prepare.exit_code, prepare.message)
        if report.reason in JOB_FAULTS:
            return fail(s, report.reason, report.message)
        return retry(s, Phase.RUNNING, "run", f"prepare did not finish: {report.message}")
    if main and main.waiting_reason in IMAGE_UNAVAILABLE:
        return fail(s, "ImageUnavailable", f"plug-in image {plugin.spec.image}: {main.waiting_reason}")
    if pod.phase not in ("Succeeded", "Failed"):  # never PodView.completed: see its docstring
        return Plan().add(*started_deadline(s, pod), *_progress(s).actions)
    ran = main is not None and main.terminated
    extra: dict[str, Any] = {"logTail": s.children.run_log_tail}
    plan = Plan()
    if ran:
        assert main is not None
        key = layout.job_prefix(s.job.namespace, s.job.uid) + layout.PLUGIN_LOG
        plan.add(StoreLog(pod.name, key))  # before the pod and its log are gone
        extra.update(
            exitCode=main.exit_code,
            pluginImageID=main.image_id,
            logRef={"bucket": s.config.store_bucket, "key": key},
        )
    if pod.phase == "Succeeded":
        moved = transition(
            s.job,
            Phase.COLLECTING,
            s.now,
            "PluginSucceeded",
            "collecting outputs",
            {**extra, "launched": None},
        )
        return plan.add(*advance(s, moved, Phase.COLLECTING, Delete("Pod", pod.name)).actions)
    if pod.reason == "DeadlineExceeded":
        return plan.add(
            *fail(
                s, "Timeout", f"the plug-in ran longer than {effective_timeout(s.job, plugin)} s", extra
            ).actions
        )
    if main and main.terminated_reason == "OOMKilled":
        return plan.add(*fail(s, "OOMKilled", "the plug-in exceeded its memory limit", extra).actions)
    if not ran:
        return retry(
            s,
            Phase.RUNNING,
            "run",
            f"the plug-in pod failed before the plug-in ran: {pod.reason or ''} {pod.message or ''}",
        )
    assert main is not None
    return plan.add(*fail(s, "ExitCode", f"the plug-in exited with code {main.exit_code}", extra).actions)


def _progress(s: Situation) -> Plan:
    """The plug-in's own progress, mapped into the Running part of ``status.progress`` (between
    where Running and Collecting start); written only when it moves forward by 1 % or more."""
    reported = s.children.plugin_progress
    if reported is None:
        return Plan()
    start, end = PROGRESS[Phase.RUNNING], PROGRESS[Phase.COLLECTING]
    overall = round(start + reported * (end - start), 3)
    if overall < (s.job.status.progress or 0.0) + 0.01:
        return Plan()
    return Plan().add(PatchStatus({"progress": overall}))


def _count(value: Any) -> int:
    """A number from a report, which may come from a pod a tenant imitated: never trusted to parse."""
    return value if isinstance(value, int) and value >= 0 else 0


def collecting(s: Situation, pod: PodView) -> Plan:
    report = step_report(pod, "collect")
    if report is None:
        return Plan()
    if not report.ok or not pod.completed:
        return _step_failed(s, Phase.COLLECTING, "collect", pod, report)
    files, total = _count(report.details.get("files")), _count(report.details.get("bytes"))
    prefix = layout.job_prefix(s.job.namespace, s.job.uid)
    outputs: dict[str, Any] = {
        "bucket": s.config.store_bucket,
        "prefix": prefix,
        "manifest": prefix + layout.MANIFEST,
        "fileCount": files,
        "totalBytes": total,
    }
    if isinstance(report.details.get("manifestSha256"), str):
        outputs["manifestSha256"] = report.details["manifestSha256"][:64]
    if isinstance(s.children.results, dict):
        outputs["results"] = s.children.results
    return finish(s, Phase.SUCCEEDED, "Completed", f"{files} files, {total} bytes", {"outputs": outputs})
