"""Each phase, and what its pod shows → (next phase, reason, retried): the whole judgement of a running
job in one table, in the style of Kueue's controller tests. Each row is one observation; the
decision is the pure ``reconcile``."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from kubecircus.operator.observe import Children, ContainerView, PodView
from kubecircus.worker.report import Report, encode

from jobbuilders import NOW, JobBuilder, decide, exited, pod, statuses

ROLE = {"Staging": "stage", "Running": "run", "Collecting": "collect"}
STAGED = {"inputs": [{"id": 0, "fingerprint": "f" * 64, "cacheHit": False, "size": [4, 4, 2]}]}
COLLECTED = {"files": 1, "bytes": 3, "resultsBytes": 2, "manifestSha256": "a" * 64}


def report(step: str, reason: str = "Done", details: dict | None = None) -> ContainerView:
    made = Report(step, reason, f"{step}: {reason}", details or {})
    return ContainerView(step, exit_code=made.exit_code, message=encode(made))


def worker(role: str, view: ContainerView, phase: str | None = None) -> PodView:
    return pod(role, phase or ("Succeeded" if view.exit_code == 0 else "Failed"), **{role: view})


def run(plugin: ContainerView, prepare: ContainerView | None = None, phase: str | None = None) -> PodView:
    views = {"plugin": plugin, "prepare": prepare or report("prepare")}
    return pod("run", phase or ("Succeeded" if plugin.exit_code == 0 else "Failed"), **views)


def evicted(role: str, message: str) -> PodView:
    return replace(pod(role, "Failed", reason="Evicted"), message=message)


def pending(role: str, seconds: int, unschedulable: str | None = None) -> PodView:
    waiting = ContainerView(role if role != "run" else "plugin", waiting_reason="ContainerCreating")
    view = pod(role, "Pending", **{waiting.name: waiting})
    return replace(view, created=NOW - timedelta(seconds=seconds), unschedulable=unschedulable)


RETRY = "retry"
TABLE = [
    # phase, the pod as observed (None: it vanished), → phase, reason (RETRY: an infrastructure retry)
    ("Staging", worker("stage", report("stage", details=STAGED)), "Running", "Staged"),
    # every container exited 0, the kubelet's phase not written yet: the next step starts now
    ("Staging", worker("stage", report("stage", details=STAGED), "Running"), "Running", "Staged"),
    ("Staging", worker("stage", report("stage", "InputInvalid")), "Failed", "InputInvalid"),
    ("Staging", worker("stage", report("stage", "InputForbidden")), "Failed", "InputForbidden"),
    ("Staging", worker("stage", report("stage", "Unavailable")), None, RETRY),
    ("Staging", worker("stage", report("stage", "Error")), None, RETRY),
    ("Staging", pod("stage", "Failed", reason="Evicted"), None, RETRY),
    ("Staging", pending("stage", 3600, "0/1 nodes are available"), None, RETRY),
    ("Staging", None, None, RETRY),
    ("Running", run(exited("plugin", 0)), "Collecting", "PluginSucceeded"),
    ("Running", run(exited("plugin", 3)), "Failed", "ExitCode"),
    ("Running", run(exited("plugin", 137, "OOMKilled")), "Failed", "OOMKilled"),
    ("Running", pod("run", "Failed", reason="DeadlineExceeded"), "Failed", "Timeout"),
    (
        "Running",
        run(ContainerView("plugin"), report("prepare", "IsolationBreach")),
        "Failed",
        "IsolationBreach",
    ),
    (
        "Running",
        run(ContainerView("plugin"), report("prepare", "WorkspaceInvalid")),
        "Failed",
        "WorkspaceInvalid",
    ),
    ("Running", run(ContainerView("plugin"), report("prepare", "Unavailable")), None, RETRY),
    (
        "Running",
        evicted("run", "The node was low on resource: memory."),
        None,
        RETRY,
    ),
    (
        "Running",
        evicted("run", "Pod ephemeral local storage usage exceeds the total limit of containers 64Mi."),
        "Failed",
        "StorageLimitExceeded",
    ),
    (
        "Running",
        pending("run", 3600, "0/1 nodes are available: Insufficient nvidia.com/gpu"),
        "Failed",
        "Unschedulable",
    ),
    ("Running", None, None, RETRY),
    ("Collecting", worker("collect", report("collect", details=COLLECTED)), "Succeeded", "Completed"),
    (
        "Collecting",
        worker("collect", report("collect", details=COLLECTED), "Running"),
        "Succeeded",
        "Completed",
    ),
    ("Collecting", worker("collect", report("collect", "OutputTooLarge")), "Failed", "OutputTooLarge"),
    ("Collecting", worker("collect", report("collect", "OutputInvalid")), "Failed", "OutputInvalid"),
    ("Collecting", worker("collect", report("collect", "ResultsMissing")), "Failed", "ResultsMissing"),
    ("Collecting", worker("collect", report("collect", "ResultsInvalid")), "Failed", "ResultsInvalid"),
    ("Collecting", worker("collect", report("collect", "Unavailable")), None, RETRY),
    ("Collecting", pod("collect", "Failed", reason="Evicted"), None, RETRY),
    ("Collecting", None, None, RETRY),
]


@pytest.mark.parametrize(
    ("phase", "observed", "next_phase", "reason"),
    TABLE,
    ids=[f"{row[0]}-{row[3]}-{i}" for i, row in enumerate(TABLE)],
)
def test_each_observation_of_a_step_decides_its_job(phase, observed, next_phase, reason):
    job = JobBuilder("j").phase(phase, launched=phase, attempt=0).build()
    pods = {ROLE[phase]: observed} if observed is not None else {}
    children = Children(pods=pods, workspace=True, policy=True, run_log_tail="log\n")
    patches = [p for p in statuses(decide(job, children)) if "phase" in p or "attempt" in p]
    assert patches, "the observation decided nothing"
    patch = patches[-1]
    if reason == RETRY:
        assert "phase" not in patch and patch["attempt"] == 1 and patch["launched"] is None, patch
    else:
        assert (patch["phase"], patch.get("reason")) == (next_phase, reason), patch


def test_the_table_covers_every_step_reason_of_the_worker_contract():
    from kubecircus.worker.report import EXIT_CODES

    judged = {row[3] for row in TABLE}
    worker_faults = set(EXIT_CODES) - {"Done", "Unavailable", "Error"}
    assert worker_faults <= judged, worker_faults - judged
