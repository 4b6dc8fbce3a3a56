"""Table tests of the reconcile decision."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from kubecircus.operator.actions import Create, Delete, PatchStatus, Warn
from kubecircus.operator.config import OperatorConfig
from kubecircus.operator.decide import reconcile
from kubecircus.operator.observe import Children, ContainerView
from kubecircus.operator.results import parse_collect_log

from jobbuilders import JobBuilder, exited, plugin, pod

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
CONFIG = OperatorConfig(identity="test")


NO_CHILDREN = Children()
PLUGIN = plugin()


def decide(job, children=NO_CHILDREN, plug=PLUGIN, config=CONFIG):
    return reconcile(job, plug, children, config, NOW).actions


def statuses(actions):
    return [a.patch for a in actions if isinstance(a, PatchStatus)]


def phase_of(actions):
    phases = [p.get("phase") for p in statuses(actions) if "phase" in p]
    return phases[-1] if phases else None


def created_kinds(actions):
    return [(a.manifest["kind"], a.manifest["metadata"]["name"]) for a in actions if isinstance(a, Create)]


def collect_log(files=(), results: bytes | None = None, end=True):
    lines = [f"FILE {len(data)} {'0' * 64} {name}" for name, data in files]
    if results is not None:
        lines += [f"RESULTS-SIZE {len(results)}", f"RESULTS64 {base64.b64encode(results).decode()}"]
    return "\n".join(lines + (["END"] if end else [])) + "\n"


def test_a_new_job_is_queued_with_a_condition_and_an_event():
    (action,) = decide(JobBuilder().build())
    assert action.patch["phase"] == "Queued" and action.patch["attempt"] == 0
    assert action.patch["conditions"][-1] == {
        "type": "Queued",
        "status": "True",
        "reason": "Submitted",
        "message": "waiting for a free slot",
        "lastTransitionTime": "2026-01-02T03:04:05Z",
    }
    assert action.event.reason == "Submitted"


def test_queued_jobs_wait_for_the_scheduler():
    assert decide(JobBuilder().phase("Queued").build()) == []


def test_a_missing_plugin_fails_the_job_clearly():
    actions = decide(JobBuilder(plugin="nope").phase("Queued").build(), plug=None)
    (patch,) = statuses(actions)
    assert patch["phase"] == "Failed" and patch["reason"] == "PluginNotFound"
    assert "no Plugin named 'nope'" in patch["message"]


def test_staging_creates_workspace_then_records_the_launch_before_the_pod():
    actions = decide(JobBuilder().phase("Staging").build())
    assert created_kinds(actions) == [
        ("PersistentVolumeClaim", actions[0].manifest["metadata"]["name"]),
        ("Pod", actions[2].manifest["metadata"]["name"]),
    ]
    assert isinstance(actions[1], PatchStatus) and actions[1].patch == {"launched": "Staging"}


def test_the_isolation_policy_exists_before_the_plugin_pod():
    job = JobBuilder("j").phase("Running").build()
    first = decide(job, Children(workspace=True))
    assert created_kinds(first) == [("NetworkPolicy", "j-isolation")]
    second = decide(job, Children(workspace=True, policy=True))
    assert created_kinds(second) == [("Pod", "j-run")]


def test_the_plugin_pod_is_locked_down():
    job = JobBuilder("j").phase("Running").spec(timeoutSeconds=99999).build()
    actions = decide(job, Children(workspace=True, policy=True), plug=plugin(timeoutSeconds=600))
    manifest = next(a.manifest for a in actions if isinstance(a, Create))
    spec = manifest["spec"]
    assert spec["automountServiceAccountToken"] is False and spec["activeDeadlineSeconds"] == 600
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    container = spec["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
    }
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/circus/in"]["readOnly"] is True and not mounts["/circus/out"].get("readOnly")
    assert manifest["metadata"]["ownerReferences"][0]["kind"] == "PluginJob"
    assert [c["name"] for c in spec["initContainers"]] == ["prepare"]
    (warning,) = [a for a in actions if isinstance(a, Warn)]  # the job asked for more than allowed
    assert warning.event.reason == "TimeoutClamped" and "600" in warning.event.message


def test_a_shorter_job_timeout_wins_silently():
    job = JobBuilder("j").phase("Running").spec(timeoutSeconds=30).build()
    actions = decide(job, Children(workspace=True, policy=True), plug=plugin(timeoutSeconds=600))
    manifest = next(a.manifest for a in actions if isinstance(a, Create))
    assert manifest["spec"]["activeDeadlineSeconds"] == 30
    assert not [a for a in actions if isinstance(a, Warn)]


@pytest.mark.parametrize(
    ("run", "reason", "exit_code"),
    [
        (pod("j-run", "Failed", plugin=exited("plugin", 3)), "ExitCode", 3),
        (pod("j-run", "Failed", plugin=exited("plugin", 137, "OOMKilled")), "OOMKilled", 137),
        (pod("j-run", "Failed", reason="DeadlineExceeded"), "Timeout", None),
        (
            pod("j-run", "Failed", prepare=exited("prepare", 42, message="IsolationBreach: reached the API")),
            "IsolationBreach",
            None,
        ),
        (
            pod("j-run", "Pending", plugin=ContainerView("plugin", waiting_reason="ErrImageNeverPull")),
            "ImageUnavailable",
            None,
        ),
    ],
)
def test_plugin_failures_fail_the_job_without_retry(run, reason, exit_code):
    job = JobBuilder("j").phase("Running", launched="Running").build()
    actions = decide(job, Children(pods={"run": run}, workspace=True, policy=True, run_log_tail="oops\n"))
    (patch,) = statuses(actions)
    assert (patch["phase"], patch["reason"], patch.get("exitCode")) == ("Failed", reason, exit_code)
    assert {(a.kind, a.name) for a in actions if isinstance(a, Delete)} == {
        ("Pod", "j-run"),
        ("PersistentVolumeClaim", "j-ws"),
        ("NetworkPolicy", "j-isolation"),
    }


def test_plugin_success_moves_to_collecting_with_the_log_tail():
    job = JobBuilder("j").phase("Running", launched="Running").build()
    actions = decide(
        job,
        Children(
            pods={"run": pod("j-run", "Succeeded")},
            workspace=True,
            policy=True,
            run_log_tail="found 2 lesions\n",
        ),
    )
    (patch,) = statuses(actions)
    assert (
        patch["phase"] == "Collecting" and patch["exitCode"] == 0 and patch["logTail"] == "found 2 lesions\n"
    )


@pytest.mark.parametrize("reason", ["Evicted", "NodeLost"])
def test_infrastructure_failures_retry_up_to_the_limit(reason):
    job = JobBuilder("j").phase("Running", launched="Running", attempt=0).build()
    children = Children(pods={"run": pod("j-run", "Failed", reason=reason)}, workspace=True, policy=True)
    actions = decide(job, children)
    (patch,) = statuses(actions)
    assert patch["attempt"] == 1 and patch["launched"] is None and "phase" not in patch
    assert Delete("Pod", "j-run") in actions
    last = JobBuilder("k").phase("Running", launched="Running", attempt=CONFIG.max_attempts - 1).build()
    (final,) = statuses(decide(last, children))
    assert final["phase"] == "Failed" and final["reason"] == "InfrastructureFailure"


def test_retries_back_off_exponentially():
    job = JobBuilder("j").phase("Running", launched="Running", attempt=1).build()
    children = Children(pods={"run": pod("j-run", "Failed", reason="Evicted")}, workspace=True, policy=True)
    (patch,) = statuses(decide(job, children))
    assert patch["retryAfter"] == "2026-01-02T03:04:15Z"  # 10 s after the second failure
    waiting = JobBuilder("k").phase("Running", attempt=2, retryAfter="2026-01-02T03:04:15Z").build()
    assert decide(waiting, Children(workspace=True, policy=True)) == []
    due = JobBuilder("m").phase("Running", attempt=2, retryAfter="2026-01-02T03:04:00Z").build()
    assert created_kinds(decide(due, Children(workspace=True, policy=True))) == [("Pod", "m-run")]


def test_a_vanished_pod_counts_as_lost_not_as_never_launched():
    job = JobBuilder("j").phase("Collecting", launched="Collecting").build()
    (patch,) = statuses(decide(job, Children(workspace=True)))
    assert patch["attempt"] == 1 and "vanished" in patch["message"]


def test_cancel_from_any_active_phase_deletes_children():
    job = JobBuilder("j").phase("Running").spec(cancel=True).build()
    actions = decide(job, Children(pods={"run": pod("j-run")}, workspace=True, policy=True))
    assert phase_of(actions) == "Cancelled"
    assert Delete("Pod", "j-run") in actions and Delete("NetworkPolicy", "j-isolation") in actions


def test_cancelled_from_queued():
    assert phase_of(decide(JobBuilder().phase("Queued").spec(cancel=True).build())) == "Cancelled"


@pytest.mark.parametrize(
    ("log", "schema", "reason"),
    [
        (collect_log([("a.png", b"x")]), None, "ResultsMissing"),
        (collect_log([("results.json", b"{")], results=b"{"), None, "ResultsInvalid"),
        (collect_log([("results.json", b"\xff")], results=b"\xff"), None, "ResultsInvalid"),
        (
            collect_log([("results.json", b'{"n": "x"}')], results=b'{"n": "x"}'),
            {"type": "object", "properties": {"n": {"type": "integer"}}},
            "ResultsInvalid",
        ),
        (
            collect_log([("big.bin", b"x" * 2048), ("results.json", b"{}")], results=b"{}"),
            None,
            "OutputTooLarge",
        ),
    ],
)
def test_collect_failures(log, schema, reason):
    job = JobBuilder("j").phase("Collecting", launched="Collecting").build()
    children = Children(pods={"collect": pod("j-collect", "Succeeded")}, workspace=True, collect_log=log)
    extra = {"resultsSchema": schema} if schema else {}
    config = OperatorConfig(identity="t", max_output_bytes=1024)
    (patch,) = statuses(decide(job, children, plug=plugin(**extra), config=config))
    assert (patch["phase"], patch["reason"]) == ("Failed", reason)


def test_collect_success_records_outputs_and_inline_results():
    results = json.dumps({"results": {"lesionCandidates": [{"x": 1}]}}).encode()
    log = collect_log([("results.json", results), ("viz/slice.png", b"png")], results=results)
    job = JobBuilder("j").phase("Collecting", launched="Collecting").build()
    children = Children(pods={"collect": pod("j-collect", "Succeeded")}, workspace=True, collect_log=log)
    schema = {"type": "object", "required": ["results"]}
    actions = decide(job, children, plug=plugin(resultsSchema=schema))
    (patch,) = statuses(actions)
    assert patch["phase"] == "Succeeded" and patch["progress"] == 1.0
    assert patch["outputs"]["results"] == {"results": {"lesionCandidates": [{"x": 1}]}}
    assert [f["name"] for f in patch["outputs"]["files"]] == ["results.json", "viz/slice.png"]
    assert Delete("PersistentVolumeClaim", "j-ws") in actions


def test_an_incomplete_collect_report_is_retried():
    job = JobBuilder("j").phase("Collecting", launched="Collecting").build()
    children = Children(
        pods={"collect": pod("j-collect", "Succeeded")},
        workspace=True,
        collect_log=collect_log([("results.json", b"{}")], results=b"{}", end=False),
    )
    (patch,) = statuses(decide(job, children))
    assert patch["attempt"] == 1


def test_parse_collect_log_keeps_spaces_in_names():
    report = parse_collect_log("FILE 3 " + "a" * 64 + " my file.txt\nEND\n")
    assert report.files == [{"name": "my file.txt", "size": 3, "sha256": "a" * 64}] and report.complete


def test_resubmit_requeues_a_failed_job_once():
    job = (
        JobBuilder("j").phase("Failed", reason="ExitCode", exitCode=3).annotate("kubecircus.io/resubmit", "1")
    )
    actions = decide(job.build())
    (patch,) = statuses(actions)
    assert patch["phase"] == "Queued" and patch["resubmitted"] == "1" and patch["exitCode"] is None
    again = job.status(resubmitted="1").build()
    assert statuses(decide(again)) == []


def test_resubmit_of_a_cancelled_job_needs_cancel_false():
    job = JobBuilder("j").phase("Cancelled").spec(cancel=True).annotate("kubecircus.io/resubmit", "2").build()
    (action,) = decide(job)
    assert isinstance(action, Warn) and "spec.cancel is still true" in action.event.message


def test_finished_jobs_only_clean_up():
    job = JobBuilder("j").phase("Succeeded").build()
    assert decide(job, Children(pods={"collect": pod("j-collect", "Succeeded")})) == [
        Delete("Pod", "j-collect")
    ]
