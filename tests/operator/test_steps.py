"""Table tests of how each step's end is judged: the worker contract, read back by the operator."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from kubecircus.operator.actions import Create, Delete, PatchStatus, ShortenDeadline, Warn
from kubecircus.operator.observe import Children, ContainerView, PodView
from kubecircus.operator.transitions import KILL_GRACE
from kubecircus.worker.report import Report, encode

from jobbuilders import NOW, JobBuilder, decide, plugin, pod, statuses

INPUT = {
    "id": 0,
    "fingerprint": "f" * 64,
    "cacheHit": True,
    "size": [4, 4, 2],
    "spacing": [1, 1, 2],
    "bytes": 9,
    "seconds": 0.1,
}


def reported(step: str, report: Report) -> ContainerView:
    return ContainerView(step, exit_code=report.exit_code, message=encode(report))


def _staging(container: ContainerView, phase: str = "Succeeded", reason: str | None = None):
    job = JobBuilder("j", uid="0123abcd-ef").phase("Staging", launched="Staging").build()
    return decide(
        job, Children(pods={"stage": pod("j-stage", phase, reason, stage=container)}, workspace=True)
    )


def test_a_staged_job_records_its_inputs_and_forgets_the_stage_credentials():
    actions = _staging(
        reported("stage", Report("stage", message="staged 1 volumes", details={"inputs": [INPUT]}))
    )
    assert actions[0] == Delete("Secret", "j-0123abcd-stage-store")
    (patch,) = statuses(actions)
    assert patch["phase"] == "Running" and patch["inputs"] == [INPUT]
    # no isolation policy seen yet: only the move; the plug-in pod waits for its policy
    assert patch["launched"] is None and not [a for a in actions if isinstance(a, Create)]


def test_a_staged_job_launches_its_plugin_pod_in_the_same_status_write():
    job = JobBuilder("j", uid="0123abcd-ef").phase("Staging", launched="Staging").build()
    done = reported("stage", Report("stage", message="staged", details={"inputs": [INPUT]}))
    children = Children(pods={"stage": pod("j-stage", "Succeeded", stage=done)}, workspace=True, policy=True)
    actions = decide(job, children)
    kinds = [type(a).__name__ for a in actions]
    assert kinds == ["Delete", "Create", "PatchStatus", "Delete"]
    assert actions[1].manifest["metadata"]["name"] == "j-0123abcd-run"
    assert actions[2].patch["phase"] == "Running" and actions[2].patch["launched"] == "Running"
    assert actions[3] == Delete("Pod", "j-stage")  # only after the write: a crash before it decides again
    # the same decision again (a crash before the write) makes the same pod: adopted, not doubled
    assert decide(job, children) == actions


@pytest.mark.parametrize(
    ("report", "phase", "pod_reason", "outcome"),
    [
        (
            Report("stage", "InputInvalid", "input 0 (s3://dicom/team/s/): IM3.dcm is truncated"),
            "Failed",
            None,
            "InputInvalid",
        ),
        (Report("stage", "Unavailable", "the object store was unavailable"), "Failed", None, "retry"),
        (Report("stage", "Error", "KeyError: x"), "Failed", None, "retry"),
        (None, "Failed", "DeadlineExceeded", "retry"),
    ],
)
def test_stage_failures_are_the_inputs_fault_or_retried(report, phase, pod_reason, outcome):
    container = reported("stage", report) if report else ContainerView("stage")
    actions = _staging(container, phase, pod_reason)
    (patch,) = statuses(actions)
    if outcome == "retry":
        assert patch["attempt"] == 1 and "phase" not in patch
        assert Delete("Pod", "j-stage", grace=KILL_GRACE) in actions
    else:
        assert (patch["phase"], patch["reason"]) == ("Failed", outcome)
        assert patch["message"] == report.message


def test_an_outage_never_fails_a_job_before_max_attempts():
    outage = reported("stage", Report("stage", "Unavailable", "down"))
    for attempt in range(2):
        job = JobBuilder("j", uid="0123abcd-ef").phase("Staging", launched="Staging", attempt=attempt).build()
        (patch,) = statuses(decide(job, Children(pods={"stage": pod("j-stage", "Failed", stage=outage)})))
        assert "phase" not in patch
    job = JobBuilder("j", uid="0123abcd-ef").phase("Staging", launched="Staging", attempt=2).build()
    (patch,) = statuses(decide(job, Children(pods={"stage": pod("j-stage", "Failed", stage=outage)})))
    assert (patch["phase"], patch["reason"]) == ("Failed", "InfrastructureFailure")


@pytest.mark.parametrize(
    ("reason", "retried"),
    [("IsolationBreach", False), ("WorkspaceInvalid", False), ("Unavailable", True), ("Error", True)],
)
def test_prepare_failures(reason, retried):
    prepare = reported("prepare", Report("prepare", reason, f"{reason}: details"))
    job = JobBuilder("j", uid="0123abcd-ef").phase("Running", launched="Running").build()
    actions = decide(
        job, Children(pods={"run": pod("j-run", "Failed", prepare=prepare)}, workspace=True, policy=True)
    )
    (patch,) = statuses(actions)
    if retried:
        assert patch["attempt"] == 1
    else:
        assert (patch["phase"], patch["reason"], patch["message"]) == ("Failed", reason, f"{reason}: details")


def _collecting(container: ContainerView, results=None):
    job = JobBuilder("j", uid="0123abcd-ef").phase("Collecting", launched="Collecting").build()
    children = Children(
        pods={
            "collect": pod(
                "j-collect", "Succeeded" if container.exit_code == 0 else "Failed", collect=container
            )
        },
        workspace=True,
        results=results,
    )
    return job, decide(job, children)


def test_collect_success_records_a_bounded_summary_and_inline_results():
    details = {"files": 2, "bytes": 40, "resultsBytes": 30, "manifestSha256": "d" * 64}
    done = Report("collect", message="2 files, 40 bytes", details=details)
    job, actions = _collecting(reported("collect", done), results={"results": {"lesionCandidates": []}})
    (patch,) = statuses(actions)
    assert patch["phase"] == "Succeeded" and patch["progress"] == 1.0
    assert patch["outputs"] == {
        "bucket": "kubecircus",
        "prefix": f"jobs/team/{job.uid}/",
        "manifest": f"jobs/team/{job.uid}/manifest.json",
        "fileCount": 2,
        "totalBytes": 40,
        "manifestSha256": "d" * 64,
        "results": {"results": {"lesionCandidates": []}},
    }
    assert (
        Delete("PersistentVolumeClaim", "j-0123abcd-ws") in actions
        and Delete("Secret", "j-0123abcd-collect-store") in actions
    )


@pytest.mark.parametrize("reason", ["OutputTooLarge", "OutputInvalid", "ResultsMissing", "ResultsInvalid"])
def test_collect_refusals_fail_the_job_with_their_reason(reason):
    _, actions = _collecting(reported("collect", Report("collect", reason, "out/x is a symbolic link")))
    (patch,) = statuses(actions)
    assert (patch["phase"], patch["reason"], patch["message"]) == (
        "Failed",
        reason,
        "out/x is a symbolic link",
    )


def test_a_garbled_collect_report_is_judged_by_its_exit_code():
    _, actions = _collecting(ContainerView("collect", exit_code=6, message="Traceback ..."))
    (patch,) = statuses(actions)
    assert patch["reason"] == "OutputTooLarge" and "no report" in patch["message"]


def test_a_crashed_collect_step_is_retried():
    _, actions = _collecting(ContainerView("collect", exit_code=137, message=""))
    (patch,) = statuses(actions)
    assert patch["attempt"] == 1 and isinstance(PatchStatus(patch), PatchStatus)


@pytest.mark.parametrize(
    ("container", "phase", "moves"),
    [
        # with restartPolicy Never an exit is final: a clean one moves the job on at once,
        # before the kubelet writes the pod's phase (about a second later on a busy node)
        (ContainerView("stage", exit_code=0, terminated_reason="Completed"), "Running", True),
        (ContainerView("stage", exit_code=0), "Succeeded", True),
        # a failure waits for the phase, which carries its reason (DeadlineExceeded, Evicted)
        (ContainerView("stage", exit_code=1, terminated_reason="Error"), "Running", False),
        (ContainerView("stage", exit_code=0, terminated_reason="OOMKilled"), "Running", False),
        (ContainerView("stage"), "Running", False),  # still running
    ],
)
def test_a_step_is_judged_once_its_containers_exited_cleanly_or_its_pod_ended(container, phase, moves):
    if container.exit_code == 0:
        container = dataclasses.replace(
            container, message=encode(Report("stage", details={"inputs": [INPUT]}))
        )
    actions = _staging(container, phase=phase)
    assert bool(statuses(actions)) == moves
    if moves:
        assert statuses(actions)[0]["phase"] == "Running"


@pytest.mark.parametrize(
    ("phase", "reason", "expected"),
    [
        ("Running", None, None),  # the plug-in exited 0: wait for the kubelet's phase
        ("Succeeded", None, "Collecting"),
        # it trapped its deadline's SIGTERM and exited 0: still a timeout
        ("Failed", "DeadlineExceeded", "Failed"),
    ],
)
def test_the_plugin_pod_is_judged_by_its_phase_never_by_its_exit_alone(phase, reason, expected):
    job = JobBuilder("j").phase("Running", launched="Running").build()
    ran = pod(
        "j-run", phase, reason, plugin=ContainerView("plugin", exit_code=0, terminated_reason="Completed")
    )
    patches = statuses(decide(job, Children(pods={"run": ran}, workspace=True, policy=True)))
    assert (patches[0]["phase"] if patches else None) == expected
    if expected == "Failed":
        assert patches[0]["reason"] == "Timeout"


@pytest.mark.parametrize(
    ("change", "completed"),
    [
        ({}, True),
        ({"phase": "Failed"}, False),
        ({"reason": "Evicted"}, False),
        ({"deleting": True}, False),
    ],
)
def test_a_clean_exit_counts_only_while_nothing_ended_the_pod(change, completed):
    clean = pod(
        "j-stage", "Running", stage=ContainerView("stage", exit_code=0, terminated_reason="Completed")
    )
    assert dataclasses.replace(clean, **change).completed == completed


def test_a_report_with_nonsense_counts_cannot_break_the_decision():
    odd = Report("collect", details={"files": "x", "bytes": -5, "manifestSha256": 7})
    _, actions = _collecting(reported("collect", odd))
    (patch,) = statuses(actions)
    assert patch["outputs"]["fileCount"] == 0 and patch["outputs"]["totalBytes"] == 0
    assert "manifestSha256" not in patch["outputs"]


@pytest.mark.parametrize(
    ("reported", "current", "written"),
    [
        (0.5, 0.3, 0.6),  # half of the run: halfway between Running (0.3) and Collecting (0.9)
        (1.0, 0.3, 0.9),
        (0.5, 0.6, None),  # nothing new
        (0.505, 0.6, None),  # less than 1 %: not worth a write
        (0.2, 0.6, None),  # never backwards
        (None, 0.3, None),  # the plug-in reports nothing (or the tail was not read this time)
    ],
)
def test_a_running_plugins_progress_moves_the_status_forward(reported, current, written):
    job = JobBuilder("j").phase("Running", launched="Running", progress=current).build()
    running = pod("j-run", "Running", plugin=ContainerView("plugin"))
    actions = decide(
        job, Children(pods={"run": running}, workspace=True, policy=True, plugin_progress=reported)
    )
    patches = statuses(actions)
    if written is None:
        assert patches == []
    else:
        assert patches == [{"progress": written}]


def test_a_refused_next_pod_writes_the_move_alone_and_never_retries_the_step_that_succeeded():
    from kubecircus.operator.steps import unlaunched

    job = JobBuilder("j", uid="0123abcd-ef").phase("Staging", launched="Staging").build()
    done = reported("stage", Report("stage", message="staged", details={"inputs": [INPUT]}))
    children = Children(pods={"stage": pod("j-stage", "Succeeded", stage=done)}, workspace=True, policy=True)
    move = unlaunched(decide(job, children))
    assert move is not None and [type(a).__name__ for a in move] == ["PatchStatus", "Delete"]
    assert move[0].patch["phase"] == "Running" and move[0].patch["launched"] is None
    assert move[0].patch["inputs"] == [INPUT]
    launching = JobBuilder("j").phase("Running", launched="Running").build()
    assert unlaunched([PatchStatus({"launched": "Running"})]) is None  # a plain launch
    assert unlaunched(decide(launching, Children(workspace=True, policy=True))) is None


def test_a_retry_also_removes_a_later_step_pod_made_before_a_crash():
    # the run pod was made, the operator died before the move, the stage pod vanished meanwhile
    job = JobBuilder("j", uid="0123abcd-ef").phase("Staging", launched="Staging").build()
    actions = decide(job, Children(pods={"run": pod("j-run", "Running")}, workspace=True, policy=True))
    (patch,) = statuses(actions)
    assert patch["attempt"] == 1 and "vanished" in patch["message"]
    assert Delete("Pod", "j-run", grace=KILL_GRACE) in actions  # never two steps at once


# --- an early plug-in pod (jobs.overlapStaging) ---------------------------------------------


def _early(run: PodView, job_timeout: int | None = None):
    spec = {"timeoutSeconds": job_timeout} if job_timeout else {}
    job = JobBuilder("j", uid="0123abcd-ef").spec(**spec).phase("Staging", launched="Staging").build()
    done = dataclasses.replace(
        reported("stage", Report("stage", message="staged", details={"inputs": [INPUT]})),
        finished_at=NOW - timedelta(seconds=2),
    )
    stage = pod("j-stage", "Succeeded", stage=done)
    return job, Children(pods={"stage": stage, "run": run}, workspace=True, policy=True)


def test_a_staged_job_with_an_early_plugin_pod_cuts_its_deadline_and_makes_no_pod():
    run = PodView("j-run", "Pending", started_at=NOW - timedelta(seconds=9.5))
    job, children = _early(run)
    actions = decide(job, children)
    assert [type(a).__name__ for a in actions] == ["Delete", "ShortenDeadline", "PatchStatus", "Delete"]
    # the plug-in's timeout counts from staging's end: the pod waited 7.5 s of its life for it
    assert actions[1] == ShortenDeadline("j-run", plugin().spec.timeout_seconds + 8)
    assert actions[2].patch["phase"] == "Running" and actions[2].patch["launched"] == "Running"
    assert actions[3] == Delete("Pod", "j-stage")
    assert decide(job, children) == actions  # a replay computes the same deadline


def test_an_early_pod_not_started_yet_gets_the_plain_timeout_and_a_clamp_is_still_told():
    job, children = _early(PodView("j-run", "Pending"), job_timeout=10**6)
    actions = decide(job, children)
    assert ShortenDeadline("j-run", plugin().spec.timeout_seconds) in actions
    assert [a.event.reason for a in actions if isinstance(a, Warn)] == ["TimeoutClamped"]


def test_an_early_pod_that_already_ended_is_judged_as_the_run_step_next():
    failed = PodView(
        "j-run",
        "Failed",
        init_containers=(reported("prepare", Report("prepare", "IsolationBreach", "reached store:9000")),),
    )
    job, children = _early(failed)
    actions = decide(job, children)
    assert not [a for a in actions if isinstance(a, ShortenDeadline | Create)]
    (patch,) = statuses(actions)
    assert patch["launched"] == "Running"
    running = JobBuilder("j", uid="0123abcd-ef").phase("Running", launched="Running").build()
    (judged,) = statuses(decide(running, Children(pods={"run": failed}, workspace=True, policy=True)))
    assert (judged["phase"], judged["reason"]) == ("Failed", "IsolationBreach")


def test_an_early_pod_being_deleted_is_not_taken_as_launched():
    job, children = _early(PodView("j-run", "Running", deleting=True))
    actions = decide(job, children)
    (patch,) = statuses(actions)
    assert patch["phase"] == "Running" and patch["launched"] is None  # made again once it is gone
    assert not [a for a in actions if isinstance(a, ShortenDeadline | Create)]


def test_a_stage_retry_removes_the_early_plugin_pod():
    job, children = _early(PodView("j-run", "Running"))
    crashed = pod("j-stage", "Failed", stage=reported("stage", Report("stage", "Error", "KeyError: x")))
    actions = decide(job, dataclasses.replace(children, pods={**children.pods, "stage": crashed}))
    (patch,) = statuses(actions)
    assert patch["attempt"] == 1
    assert Delete("Pod", "j-run", grace=KILL_GRACE) in actions


def test_the_cut_still_comes_when_the_workspace_claim_is_being_deleted():
    # a tenant deleted the claim during staging: the move must still cut the early pod's deadline
    job, children = _early(PodView("j-run", "Running", started_at=NOW - timedelta(seconds=4)))
    actions = decide(job, dataclasses.replace(children, workspace=False))
    assert ShortenDeadline("j-run", plugin().spec.timeout_seconds + 2) in actions
    assert statuses(actions)[-1]["launched"] == "Running"


def test_a_missing_job_policy_is_made_again_before_the_early_pod_is_launched():
    job, children = _early(PodView("j-run", "Running"))
    actions = decide(job, dataclasses.replace(children, policy=False))
    (policy,) = [a for a in actions if isinstance(a, Create)]
    assert policy.manifest["kind"] == "NetworkPolicy"
    assert actions.index(policy) < actions.index(next(a for a in actions if isinstance(a, PatchStatus)))


def _started(deadline: int, prepare_took: float) -> PodView:
    prepare = dataclasses.replace(
        reported("prepare", Report("prepare", message="ok")),
        finished_at=NOW - timedelta(seconds=10) + timedelta(seconds=prepare_took),
    )
    return PodView(
        "j-run",
        "Running",
        started_at=NOW - timedelta(seconds=10),
        deadline=deadline,
        init_containers=(prepare,),
        containers=(ContainerView("plugin"),),
    )


@pytest.mark.parametrize(
    ("deadline", "prepare_took", "cut"),
    [
        (5000, 2.5, 60 + 3),  # an early pod's long deadline, missed or counted from an earlier moment
        (63, 2.5, None),  # already the plug-in's timeout from prepare's end
        (40, 2.5, None),  # never raised
    ],
)
def test_a_running_plugin_gets_its_timeout_from_prepares_end_and_no_more(deadline, prepare_took, cut):
    job = JobBuilder("j").spec(timeoutSeconds=60).phase("Running", launched="Running").build()
    run = _started(deadline, prepare_took)
    actions = decide(job, Children(pods={"run": run}, workspace=True, policy=True))
    cuts = [a for a in actions if isinstance(a, ShortenDeadline)]
    assert cuts == ([ShortenDeadline("j-run", cut)] if cut else [])
