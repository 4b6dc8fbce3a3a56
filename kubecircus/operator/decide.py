"""Reconcile decisions: ``(job, plugin, children, config, now) -> actions``. Pure, table-tested.

The kopf handlers only observe, call :func:`reconcile`, and apply the actions it returns (see
``apply.py``). Phases move only forward: Queued → Staging → Running → Collecting → Succeeded,
or to Failed/Cancelled from anywhere; a resubmit is the one way back to Queued.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import jsonschema

from . import builders
from .actions import Action, Create, Delete, Event, PatchStatus, Plan, Warn
from .api import FINISHED_PHASES, Phase, Plugin, PluginJob
from .config import OperatorConfig
from .observe import IMAGE_UNAVAILABLE, Children, PodView
from .results import parse_collect_log

RESUBMIT_ANNOTATION = "kubecircus.io/resubmit"
PHASE_POD = {Phase.STAGING: "stage", Phase.RUNNING: "run", Phase.COLLECTING: "collect"}
PROGRESS = {Phase.QUEUED: 0.0, Phase.STAGING: 0.1, Phase.RUNNING: 0.3, Phase.COLLECTING: 0.9}
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
LOG_TAIL_BYTES = 4096
#: Infrastructure retries wait 5 s, 10 s, 20 s, ... before launching again.
RETRY_BASE_SECONDS = 5


# --- helpers -----------------------------------------------------------------------------------


def timestamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


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
    if phase in PROGRESS:
        patch["progress"] = PROGRESS[phase]
    if phase == Phase.SUCCEEDED:
        patch["progress"] = 1.0
    if phase in FINISHED_PHASES:
        patch["completionTime"] = stamp
        patch["queuePosition"] = None
    if extra:
        patch.update(extra)
    return PatchStatus(patch, Event(event_type, reason, f"{phase.value}: {message}"))


def effective_timeout(job: PluginJob, plugin: Plugin) -> int:
    limit = plugin.spec.timeout_seconds
    return min(job.spec.timeout_seconds, limit) if job.spec.timeout_seconds else limit


def cleanup(children: Children, job: PluginJob) -> list[Action]:
    actions: list[Action] = [Delete("Pod", pod.name) for pod in children.pods.values() if not pod.deleting]
    if children.workspace:
        actions.append(Delete("PersistentVolumeClaim", builders.child_name(job, "ws")))
    if children.policy:
        actions.append(Delete("NetworkPolicy", builders.child_name(job, "isolation")))
    return actions


def fail(
    job: PluginJob,
    children: Children,
    now: datetime,
    reason: str,
    message: str,
    extra: dict[str, Any] | None = None,
) -> Plan:
    return Plan().add(
        transition(job, Phase.FAILED, now, reason, message, extra, "Warning"), *cleanup(children, job)
    )


# --- the decision ------------------------------------------------------------------------------


def reconcile(
    job: PluginJob, plugin: Plugin | None, children: Children, config: OperatorConfig, now: datetime
) -> Plan:
    phase = Phase(job.status.phase) if job.status.phase else None
    if phase in FINISHED_PHASES:
        return _finished(job, children, now)
    if job.spec.cancel:
        return Plan().add(
            transition(job, Phase.CANCELLED, now, "Cancelled", "cancelled by spec.cancel"),
            *cleanup(children, job),
        )
    if phase is None:
        return Plan().add(
            transition(job, Phase.QUEUED, now, "Submitted", "waiting for a free slot", {"attempt": 0})
        )
    if plugin is None:
        return fail(
            job,
            children,
            now,
            "PluginNotFound",
            f"no Plugin named '{job.spec.plugin}' (kubectl get plugins lists them)",
        )
    if phase == Phase.QUEUED:
        return Plan()  # admission is the scheduler's (see queue.py)
    role = PHASE_POD[phase]
    pod = children.pods.get(role)
    if pod is None:
        return _launch(job, plugin, children, config, now, phase, role)
    if pod.deleting:
        return Plan()  # wait until it is gone
    if _infrastructure_failure(pod):
        return _retry(
            job,
            children,
            config,
            now,
            phase,
            role,
            f"pod {pod.name} failed: {pod.reason or 'node lost'} {pod.message or ''}".strip(),
        )
    return {Phase.STAGING: _staging, Phase.RUNNING: _running, Phase.COLLECTING: _collecting}[phase](
        job, plugin, children, config, now, pod
    )


def pending_resubmit(job: PluginJob) -> str | None:
    """The resubmit annotation's value when it has not been acted on yet."""
    wanted = job.metadata.get("annotations", {}).get(RESUBMIT_ANNOTATION)
    return wanted if wanted and wanted != job.status.resubmitted else None


def _finished(job: PluginJob, children: Children, now: datetime) -> Plan:
    plan = Plan().add(*cleanup(children, job))
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
    return plan.add(
        transition(
            job,
            Phase.QUEUED,
            now,
            "Resubmitted",
            f"resubmitted ({RESUBMIT_ANNOTATION}={wanted})",
            {
                "resubmitted": wanted,
                "attempt": 0,
                "exitCode": None,
                "startTime": None,
                "completionTime": None,
                "outputs": None,
                "launched": None,
                "retryAfter": None,
                "logTail": None,
            },
        )
    )


def _infrastructure_failure(pod: PodView) -> bool:
    return pod.phase == "Unknown" or (pod.phase == "Failed" and (pod.reason or "") in INFRASTRUCTURE_REASONS)


def _launch(
    job: PluginJob,
    plugin: Plugin,
    children: Children,
    config: OperatorConfig,
    now: datetime,
    phase: Phase,
    role: str,
) -> Plan:
    if job.status.launched == phase.value:
        return _retry(
            job, children, config, now, phase, role, f"pod {builders.child_name(job, role)} vanished"
        )
    if job.status.retry_after and timestamp(now) < job.status.retry_after:
        return Plan()  # backing off after an infrastructure failure
    plan = Plan()
    if not children.workspace:
        plan.add(Create(builders.workspace_claim(job, config)))
    if phase == Phase.STAGING:
        manifest = builders.stage_pod(job, config)
    elif phase == Phase.RUNNING:
        if not children.policy:  # the deny-all policy must exist before the plug-in pod
            return plan.add(Create(builders.isolation_policy(job)))
        manifest = builders.run_pod(job, plugin, config, effective_timeout(job, plugin))
        if job.spec.timeout_seconds and job.spec.timeout_seconds > plugin.spec.timeout_seconds:
            plan.add(
                Warn(
                    Event(
                        "Warning",
                        "TimeoutClamped",
                        f"spec.timeoutSeconds {job.spec.timeout_seconds} is above the plug-in's "
                        f"{plugin.spec.timeout_seconds}; the plug-in's limit applies",
                    )
                )
            )
    else:
        manifest = builders.collect_pod(job, config)
    return plan.add(PatchStatus({"launched": phase.value}), Create(manifest))


def _retry(
    job: PluginJob,
    children: Children,
    config: OperatorConfig,
    now: datetime,
    phase: Phase,
    role: str,
    why: str,
) -> Plan:
    attempt = job.status.attempt + 1
    if attempt >= config.max_attempts:
        return fail(
            job,
            children,
            now,
            "InfrastructureFailure",
            f"{why}; gave up after {attempt} attempts",
            {"attempt": attempt},
        )
    plan = Plan().add(
        PatchStatus(
            {
                "attempt": attempt,
                "launched": None,
                "retryAfter": timestamp(now + timedelta(seconds=RETRY_BASE_SECONDS * 2 ** (attempt - 1))),
                "reason": "Retrying",
                "message": f"{why}; attempt {attempt + 1} of {config.max_attempts}",
            },
            Event("Warning", "Retrying", f"{why}; launching again"),
        )
    )
    pod = children.pods.get(role)
    if pod is not None and not pod.deleting:
        plan.add(Delete("Pod", pod.name))
    return plan


def _staging(
    job: PluginJob, plugin: Plugin, children: Children, config: OperatorConfig, now: datetime, pod: PodView
) -> Plan:
    if pod.phase == "Succeeded":
        return Plan().add(
            transition(
                job, Phase.RUNNING, now, "Staged", "inputs staged; starting the plug-in", {"launched": None}
            ),
            Delete("Pod", pod.name),
        )
    if pod.phase == "Failed":
        container = pod.container("stage")
        detail = (container.message if container else None) or pod.message or "the staging pod failed"
        return fail(job, children, now, "InputInvalid", detail.strip())
    return Plan()


def _running(
    job: PluginJob, plugin: Plugin, children: Children, config: OperatorConfig, now: datetime, pod: PodView
) -> Plan:
    prepare, main = pod.container("prepare"), pod.container("plugin")
    if prepare and prepare.exit_code == builders.ISOLATION_BREACH_EXIT:
        return fail(job, children, now, "IsolationBreach", (prepare.message or "network reachable").strip())
    if main and main.waiting_reason in IMAGE_UNAVAILABLE:
        return fail(
            job,
            children,
            now,
            "ImageUnavailable",
            f"plug-in image {plugin.spec.image}: {main.waiting_reason}",
        )
    if pod.phase == "Succeeded":
        return Plan().add(
            transition(
                job,
                Phase.COLLECTING,
                now,
                "PluginSucceeded",
                "collecting outputs",
                {"exitCode": 0, "logTail": children.run_log_tail, "launched": None},
            ),
            Delete("Pod", pod.name),
        )
    if pod.phase != "Failed":
        return Plan()
    extra = {"logTail": children.run_log_tail}
    if pod.reason == "DeadlineExceeded":
        return fail(
            job,
            children,
            now,
            "Timeout",
            f"the plug-in ran longer than {effective_timeout(job, plugin)} s",
            extra,
        )
    if prepare and prepare.exit_code not in (None, 0):
        return fail(
            job, children, now, "WorkspaceInvalid", (prepare.message or "prepare failed").strip(), extra
        )
    if main and main.terminated_reason == "OOMKilled":
        return fail(
            job,
            children,
            now,
            "OOMKilled",
            "the plug-in exceeded its memory limit",
            {**extra, "exitCode": main.exit_code},
        )
    code = main.exit_code if main else None
    return fail(
        job, children, now, "ExitCode", f"the plug-in exited with code {code}", {**extra, "exitCode": code}
    )


def _collecting(
    job: PluginJob, plugin: Plugin, children: Children, config: OperatorConfig, now: datetime, pod: PodView
) -> Plan:
    if pod.phase == "Failed":
        return _retry(
            job, children, config, now, Phase.COLLECTING, "collect", f"collect pod failed: {pod.message}"
        )
    if pod.phase != "Succeeded" or children.collect_log is None:
        return Plan()
    report = parse_collect_log(children.collect_log)
    if not report.complete:
        return _retry(
            job, children, config, now, Phase.COLLECTING, "collect", "the collect report was cut short"
        )
    total = sum(f["size"] for f in report.files)
    if total > config.max_output_bytes:
        return fail(
            job,
            children,
            now,
            "OutputTooLarge",
            f"the plug-in wrote {total} bytes to out/, more than the {config.max_output_bytes} allowed",
        )
    if report.results_size is None:
        return fail(job, children, now, "ResultsMissing", "the plug-in wrote no /circus/out/results.json")
    if report.results is None:
        return fail(
            job,
            children,
            now,
            "ResultsInvalid",
            f"results.json is {report.results_size} bytes; at most {builders.MAX_RESULTS_BYTES} are accepted",
        )
    try:
        results = json.loads(report.results.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return fail(job, children, now, "ResultsInvalid", f"results.json is not UTF-8 JSON: {exc}")
    if plugin.spec.results_schema:
        try:
            jsonschema.validate(results, plugin.spec.results_schema)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
            return fail(
                job,
                children,
                now,
                "ResultsInvalid",
                f"results.json does not match the plug-in's schema at {where}: {exc.message}",
            )
    outputs: dict[str, Any] = {"files": report.files}
    if report.results_size <= config.max_inline_results_bytes and isinstance(results, dict):
        outputs["results"] = results
    done = transition(
        job,
        Phase.SUCCEEDED,
        now,
        "Completed",
        f"{len(report.files)} files, {total} bytes",
        {"outputs": outputs},
    )
    return Plan().add(done, *cleanup(children, job))


def run_log_tail(log: str) -> str:
    data = log.encode("utf-8", "replace")[-LOG_TAIL_BYTES:]
    return data.decode("utf-8", "ignore")
