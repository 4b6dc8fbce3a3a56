"""Table tests of the reconcile decision: phases, children, the namespace rule, deletion."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest

from kubecircus.operator.actions import (
    Create,
    Delete,
    DeleteObjects,
    MintCredentials,
    SetFinalizer,
    StoreLog,
    Warn,
)
from kubecircus.operator.builders import child_name
from kubecircus.operator.config import OperatorConfig
from kubecircus.operator.decide import FINALIZER, reconcile
from kubecircus.operator.observe import Children, ContainerView, PodView
from kubecircus.operator.transitions import KILL_GRACE

from jobbuilders import (
    CONFIG,
    JobBuilder,
    created_kinds,
    decide,
    deleted,
    exited,
    phase_of,
    plugin,
    pod,
    statuses,
)


def test_a_new_job_gets_the_finalizer_and_is_queued_with_a_condition_and_an_event():
    job = JobBuilder(namespace="team")
    job.body["metadata"]["generation"] = 3
    standing, finalizer, queued = decide(job.build())
    # the namespace's standing deny-all for plug-in pods, kept whatever happens to the job's own
    assert standing.manifest["metadata"] == {
        "name": "kubecircus-plugin-deny-all",
        "namespace": "team",
        "labels": {"app.kubernetes.io/managed-by": "kubecircus"},
    }
    assert standing.manifest["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert finalizer == SetFinalizer(True)
    assert queued.patch["phase"] == "Queued" and queued.patch["attempt"] == 0
    assert queued.patch["observedGeneration"] == 3  # the spec it was decided on
    assert queued.patch["conditions"][-1] == {
        "type": "Queued",
        "status": "True",
        "reason": "Submitted",
        "message": "waiting for a free slot",
        "lastTransitionTime": "2026-01-02T03:04:05Z",
    }
    assert queued.event.reason == "Submitted"


def test_queued_jobs_wait_for_the_scheduler():
    assert decide(JobBuilder().phase("Queued").build()) == []


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ({"bucket": "dicom", "prefix": "other-team/s1/"}, "read only keys under 'team/'"),
        ({"bucket": "secrets", "prefix": "team/s1/"}, "bucket 'secrets' is not an input bucket"),
        ({"bucket": "dicom", "prefix": "team/../other/"}, "'.'/'..'"),
    ],
)
@pytest.mark.parametrize("phase", [None, "Queued"])
def test_inputs_outside_the_namespace_fail_at_once(source, words, phase):
    builder = JobBuilder(namespace="team").spec(
        inputs=[{"source": {"bucket": "dicom", "prefix": "team/ok/"}}, {"source": source}]
    )
    if phase:
        builder.phase(phase)
    actions = decide(builder.build())
    (patch,) = statuses(actions)
    assert (patch["phase"], patch["reason"]) == ("Failed", "InputForbidden")
    assert patch["message"].startswith("input 1: ") and words in patch["message"]
    assert not created_kinds(actions) and not [a for a in actions if isinstance(a, MintCredentials)]


def test_an_unpinned_image_is_refused_when_the_cluster_requires_digests():
    config = OperatorConfig(identity="t", require_image_digest=True)
    (patch,) = statuses(decide(JobBuilder().phase("Queued").build(), config=config))
    assert patch["reason"] == "ImageNotPinned"
    pinned = plugin(image="localhost/p@sha256:" + "a" * 64)
    assert decide(JobBuilder().phase("Queued").build(), plug=pinned, config=config) == []


def test_a_missing_plugin_fails_the_job_clearly():
    actions = decide(JobBuilder(plugin="nope").phase("Queued").build(), no_plugin=True)
    (patch,) = statuses(actions)
    assert patch["phase"] == "Failed" and patch["reason"] == "PluginNotFound"
    assert "no Plugin named 'nope'" in patch["message"]


OVERLAP = OperatorConfig(identity="test", store_endpoint="store:9000", overlap_staging=True)


def test_staging_mints_credentials_then_creates_the_pods_then_records_the_launch():
    job = JobBuilder("j").phase("Staging", attempt=1).build()
    actions = decide(job, config=OVERLAP)
    assert [type(a).__name__ for a in actions] == [
        "Create",
        "Create",
        "MintCredentials",
        "Create",
        "Create",
        "PatchStatus",
    ]
    assert created_kinds(actions) == [
        ("PersistentVolumeClaim", child_name(job, "ws")),
        ("NetworkPolicy", child_name(job, "isolation")),  # before the plug-in pod
        ("Pod", child_name(job, "stage")),
        ("Pod", child_name(job, "run")),  # early: its start overlaps staging
    ]
    assert child_name(job, "stage") == f"j-{job.uid[:8]}-stage"
    mint, stage, early = actions[2], actions[3], actions[4]
    assert not stage.optional and early.optional  # a refused head start is not the job's failure
    assert json.loads(stage.manifest["spec"]["containers"][0]["env"][0]["value"])["attempt"] == 1
    (prepare,) = early.manifest["spec"]["initContainers"]
    task = json.loads(prepare["env"][0]["value"])
    wait = CONFIG.stage_deadline_seconds + 60
    assert task["attempt"] == 1 and task["awaitStagingSeconds"] == wait
    # the deadline covers the wait; cut to the timeout when staging ends (test_steps)
    assert early.manifest["spec"]["activeDeadlineSeconds"] == plugin().spec.timeout_seconds + wait
    affinity = early.manifest["spec"]["affinity"]["podAffinity"]
    (term,) = affinity["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"]["kubecircus.io/role"] == "stage"
    assert actions[5].patch == {"launched": "Staging"}  # one write for both pods
    assert (
        mint.manifest["metadata"]["name"] == child_name(job, "stage-store")
        and "dicom/team/s1/*" in mint.policy
    )
    assert mint.seconds == CONFIG.stage_deadline_seconds + 60


def test_without_overlap_staging_makes_only_the_stage_pod():
    job = JobBuilder("j").phase("Staging").build()
    assert [kind for kind, _ in created_kinds(decide(job))].count("Pod") == 1  # the default


def test_a_replayed_staging_launch_does_not_make_the_early_pod_again():
    # the operator died after making both pods, before the status write
    job = JobBuilder("j").phase("Staging").build()
    children = Children(pods={"run": pod(child_name(job, "run"), "Pending")}, workspace=True, policy=True)
    assert created_kinds(decide(job, children, config=OVERLAP)) == [("Pod", child_name(job, "stage"))]


def test_nothing_launches_while_the_last_workspace_is_being_deleted():
    assert decide(JobBuilder("j").phase("Staging").build(), Children(workspace_terminating=True)) == []


def test_the_isolation_policy_exists_before_the_plugin_pod():
    job = JobBuilder("j").phase("Running").build()
    first = decide(job, Children(workspace=True))
    assert created_kinds(first) == [("NetworkPolicy", child_name(job, "isolation"))]
    second = decide(job, Children(workspace=True, policy=True))
    assert created_kinds(second) == [("Pod", child_name(job, "run"))]


def test_collecting_mints_write_only_credentials_for_this_job():
    job = JobBuilder("j").phase("Collecting").build()
    actions = decide(job, Children(workspace=True))
    (mint,) = [a for a in actions if isinstance(a, MintCredentials)]
    assert '"Action":["s3:PutObject","s3:AbortMultipartUpload"]' in mint.policy
    assert "jobs/team/uid-" in mint.policy and "GetObject" not in mint.policy
    assert created_kinds(actions) == [("Pod", child_name(job, "collect"))]


@pytest.mark.parametrize(
    ("run", "reason", "exit_code"),
    [
        (pod("j-run", "Failed", plugin=exited("plugin", 3)), "ExitCode", 3),
        (pod("j-run", "Failed", plugin=exited("plugin", 137, "OOMKilled")), "OOMKilled", 137),
        (pod("j-run", "Failed", reason="DeadlineExceeded"), "Timeout", None),
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
    # the plug-in pod dies at once; the policy stays until no pod is left
    assert deleted(actions) == {
        ("Secret", child_name(job, "stage-store")),
        ("Secret", child_name(job, "collect-store")),
        ("Pod", "j-run"),
        ("PersistentVolumeClaim", child_name(job, "ws")),
    }
    assert Delete("Pod", "j-run", grace=KILL_GRACE) in actions
    ran = run.container("plugin") is not None and run.container("plugin").terminated
    assert bool([a for a in actions if isinstance(a, StoreLog)]) == ran


def test_a_plugin_that_ran_has_its_log_stored_before_its_pod_goes_and_its_image_recorded():
    main = ContainerView("plugin", exit_code=0, image_id="localhost/p@sha256:" + "b" * 64)
    job = JobBuilder("j").phase("Running", launched="Running").build()
    children = Children(
        pods={"run": pod("j-run", "Succeeded", plugin=main)},
        workspace=True,
        policy=True,
        run_log_tail="found 2\n",
    )
    actions = decide(job, children)
    kinds = [type(a).__name__ for a in actions]
    # the log kept, the collect pod made, then ONE write: Collecting and its pod launched
    assert kinds == ["StoreLog", "MintCredentials", "Create", "PatchStatus", "Delete"]
    assert actions[0] == StoreLog("j-run", f"jobs/team/{job.uid}/plugin-log.txt")
    patch = actions[3].patch
    assert patch["phase"] == "Collecting" and patch["exitCode"] == 0 and patch["logTail"] == "found 2\n"
    assert patch["launched"] == "Collecting"
    assert patch["pluginImageID"].endswith("b" * 64)
    assert patch["logRef"] == {"bucket": "kubecircus", "key": f"jobs/team/{job.uid}/plugin-log.txt"}
    collect = actions[2].manifest
    assert collect["kind"] == "Pod" and collect["metadata"]["name"].endswith("-collect")
    # the manifest names the build that ran: read from the status this very patch writes
    assert "b" * 64 in json.dumps(collect)


@pytest.mark.parametrize("reason", ["Evicted", "NodeLost"])
def test_infrastructure_failures_retry_up_to_the_limit(reason):
    job = JobBuilder("j").phase("Running", launched="Running", attempt=0).build()
    children = Children(pods={"run": pod("j-run", "Failed", reason=reason)}, workspace=True, policy=True)
    actions = decide(job, children)
    (patch,) = statuses(actions)
    assert patch["attempt"] == 1 and patch["launched"] is None and "phase" not in patch
    assert Delete("Pod", "j-run", grace=KILL_GRACE) in actions
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
    assert created_kinds(decide(due, Children(workspace=True, policy=True))) == [
        ("Pod", child_name(due, "run"))
    ]


def test_a_vanished_pod_counts_as_lost_not_as_never_launched():
    job = JobBuilder("j").phase("Collecting", launched="Collecting").build()
    (patch,) = statuses(decide(job, Children(workspace=True)))
    assert patch["attempt"] == 1 and "vanished" in patch["message"]


def test_cancel_from_any_active_phase_kills_the_pod_and_keeps_the_policy_until_it_is_gone():
    job = JobBuilder("j").phase("Running").spec(cancel=True).build()
    actions = decide(job, Children(pods={"run": pod("j-run")}, workspace=True, policy=True))
    assert phase_of(actions) == "Cancelled"
    assert Delete("Pod", "j-run", grace=KILL_GRACE) in actions
    assert "NetworkPolicy" not in {kind for kind, _ in deleted(actions)}
    cancelled = JobBuilder("j").phase("Cancelled").spec(cancel=True).build()
    assert decide(cancelled, Children(policy=True)) == [
        Delete("NetworkPolicy", child_name(cancelled, "isolation"))
    ]


def test_cancelled_from_queued():
    assert phase_of(decide(JobBuilder().phase("Queued").spec(cancel=True).build())) == "Cancelled"


def test_resubmit_requeues_a_failed_job_once_and_forgets_its_old_outputs():
    job = (
        JobBuilder("j").phase("Failed", reason="ExitCode", exitCode=3).annotate("kubecircus.io/resubmit", "1")
    )
    actions = decide(job.build())
    (patch,) = statuses(actions)
    assert patch["phase"] == "Queued" and patch["resubmitted"] == "1" and patch["exitCode"] is None
    assert patch["logRef"] is None and patch["inputs"] is None
    assert patch["queuedAt"] == "2026-01-02T03:04:05Z"  # its place in the queue is now
    assert DeleteObjects(f"jobs/team/{job.build().uid}/") in actions
    again = job.status(resubmitted="1").build()
    assert statuses(decide(again)) == []


def test_resubmit_of_a_cancelled_job_needs_cancel_false():
    job = JobBuilder("j").phase("Cancelled").spec(cancel=True).annotate("kubecircus.io/resubmit", "2").build()
    (action,) = decide(job)
    assert isinstance(action, Warn) and "spec.cancel is still true" in action.event.message


def test_finished_jobs_only_clean_up():
    job = JobBuilder("j").phase("Succeeded").build()
    assert decide(job, Children(pods={"collect": pod("j-collect", "Succeeded")})) == [
        Delete("Pod", "j-collect", grace=KILL_GRACE)
    ]


def _deleting(builder: JobBuilder) -> JobBuilder:
    builder.body["metadata"]["deletionTimestamp"] = "2026-01-02T03:04:00Z"
    builder.body["metadata"]["finalizers"] = [FINALIZER]
    return builder


def test_deleting_a_running_job_kills_its_pod_first_then_deletes_outputs_and_the_finalizer():
    job = _deleting(JobBuilder("j").phase("Running")).build()
    first = decide(job, Children(pods={"run": pod("j-run")}, workspace=True, policy=True))
    assert first == [
        Delete("Pod", "j-run", grace=KILL_GRACE),
        Delete("PersistentVolumeClaim", child_name(job, "ws")),
    ]
    gone = decide(job, Children(policy=True))
    assert gone[0] == Delete("NetworkPolicy", child_name(job, "isolation"))
    assert gone[-2:] == [DeleteObjects(f"jobs/team/{job.uid}/"), SetFinalizer(False)]
    assert not statuses(gone)


def test_a_deleted_job_without_the_finalizer_is_left_alone():
    builder = _deleting(JobBuilder("j").phase("Succeeded"))
    builder.body["metadata"]["finalizers"] = ["someone-else/keep"]
    assert decide(builder.build()) == []


def test_inputs_edited_to_another_namespace_while_queued_are_refused_at_launch():
    """Inputs stay editable while Queued; the scheduler admits without deciding: launch checks."""
    job = (
        JobBuilder("j", namespace="team")
        .phase("Staging")
        .spec(inputs=[{"source": {"bucket": "dicom", "prefix": "victim/s/"}}])
    )
    actions = decide(job.build())
    (patch,) = statuses(actions)
    assert (patch["phase"], patch["reason"]) == ("Failed", "InputForbidden")
    assert not [a for a in actions if isinstance(a, MintCredentials)] and not created_kinds(actions)


@pytest.mark.parametrize(
    ("message", "reason", "retried"),
    [
        ('admission webhook "policy.example" denied the request: no GPU here', "CreateRefused", False),
        ('pods is forbidden: violates PodSecurity "restricted:latest"', "CreateRefused", False),
        ('pods "j-stage" is forbidden: exceeded quota: compute, requested: pods=1', None, True),
    ],
)
def test_a_child_the_api_server_refuses_fails_the_job_with_its_words_or_waits_for_quota(
    message, reason, retried
):
    from kubecircus.operator.decide import refused

    from jobbuilders import CONFIG, NOW, plugin

    job = JobBuilder("j").phase("Staging").build()
    plan = refused(job, plugin(), Children(workspace=True), CONFIG, NOW, "Pod", message)
    (patch,) = statuses(plan.actions)
    if retried:
        assert patch["attempt"] == 1 and "phase" not in patch and "quota" in patch["message"]
    else:
        assert (patch["phase"], patch["reason"]) == ("Failed", reason) and message[:40] in patch["message"]


def test_a_quota_full_only_because_the_step_before_is_still_ending_is_waited_out():
    """A step is done when its containers exit; its pod counts against a pods quota until the
    kubelet ends it. Refusing the next pod then is no failure: the next round makes it."""
    from kubecircus.operator.decide import refused

    from jobbuilders import CONFIG, NOW, plugin

    job = JobBuilder("j").phase("Running").build()
    stage = pod(
        "j-stage", "Running", stage=ContainerView("stage", exit_code=0, terminated_reason="Completed")
    )
    message = 'pods "j-run" is forbidden: exceeded quota: one-pod, requested: pods=1'
    children = Children(pods={"stage": stage}, workspace=True, policy=True)
    assert refused(job, plugin(), children, CONFIG, NOW, "Pod", message).actions == []
    # one whose node is gone is let go, as the step's own pod would be
    lost = dataclasses.replace(stage, deleting=True, deleted_at=NOW - timedelta(hours=1))
    gone = refused(
        job,
        plugin(),
        Children(pods={"stage": lost}, workspace=True, policy=True),
        CONFIG,
        NOW,
        "Pod",
        message,
    )
    assert gone.actions == [Delete("Pod", "j-stage", grace=0)]
    # once it is gone, a refusal is the quota's: an infrastructure retry
    (patch,) = statuses(
        refused(job, plugin(), Children(workspace=True, policy=True), CONFIG, NOW, "Pod", message).actions
    )
    assert patch["attempt"] == 1


def _pending(role: str, seconds: float, unschedulable: str | None = None, waiting: str | None = None):
    from dataclasses import replace
    from datetime import timedelta

    from jobbuilders import NOW

    containers = (
        {role if role != "run" else "plugin": ContainerView(role, waiting_reason=waiting)} if waiting else {}
    )
    view = pod(f"j-{role}", "Pending", **containers)
    return replace(view, created=NOW - timedelta(seconds=seconds), unschedulable=unschedulable)


@pytest.mark.parametrize(
    ("phase", "role", "view", "outcome"),
    [
        ("Running", "run", _pending("run", 30), "wait"),
        (
            "Running",
            "run",
            _pending(
                "run",
                700,
                unschedulable="Unschedulable: 0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
            ),
            "Unschedulable",
        ),
        (
            "Staging",
            "stage",
            _pending("stage", 700, unschedulable="Unschedulable: unbound PersistentVolumeClaims"),
            "retry",
        ),
        ("Collecting", "collect", _pending("collect", 700, waiting="ImagePullBackOff"), "retry"),
    ],
)
def test_a_pod_that_never_starts_ends_its_attempt(phase, role, view, outcome):
    job = JobBuilder("j").phase(phase, launched=phase).build()
    actions = decide(job, Children(pods={role: view}, workspace=True, policy=True))
    patches = statuses(actions)
    if outcome == "wait":
        assert actions == []
    elif outcome == "retry":
        (patch,) = patches
        assert patch["attempt"] == 1 and "did not start within 600 s" in patch["message"]
        assert (view.unschedulable or "ImagePullBackOff") in patch["message"]
    else:
        (patch,) = patches
        assert (patch["phase"], patch["reason"]) == ("Failed", "Unschedulable")
        assert "Insufficient nvidia.com/gpu" in patch["message"]


def test_a_pod_stuck_terminating_is_forced_out():
    from dataclasses import replace
    from datetime import timedelta

    from jobbuilders import NOW

    job = JobBuilder("j").phase("Running", launched="Running").build()
    stuck = replace(pod("j-run", "Running"), deleting=True, deleted_at=NOW - timedelta(seconds=300))
    assert decide(job, Children(pods={"run": stuck}, workspace=True, policy=True)) == [
        Delete("Pod", "j-run", grace=0)
    ]
    recent = replace(stuck, deleted_at=NOW - timedelta(seconds=5))
    assert decide(job, Children(pods={"run": recent}, workspace=True, policy=True)) == []


def test_plugin_quantities_reach_the_pod_as_strings():
    """The Kubernetes client refuses numbers where the API takes quantities (found on GPUs)."""
    job = JobBuilder("j").phase("Running").build()
    plug = plugin(gpus=1, resources={"limits": {"cpu": 2, "memory": "1Gi"}})
    (pod_manifest,) = [
        a.manifest
        for a in decide(job, Children(workspace=True, policy=True), plug=plug)
        if isinstance(a, Create)
    ]
    resources = pod_manifest["spec"]["containers"][0]["resources"]
    assert resources["limits"] == {
        "cpu": "2",
        "memory": "1Gi",
        "ephemeral-storage": "2Gi",
        "nvidia.com/gpu": "1",
    }
    # what the Plugin left out comes from the chart's defaults: never a BestEffort pod
    assert resources["requests"] == {"cpu": "250m", "memory": "256Mi", "nvidia.com/gpu": "1"}


def test_a_plugin_without_resources_gets_the_defaults_and_a_small_limit_caps_the_request():
    job = JobBuilder("j").phase("Running").build()
    for plug, limits, requests in [
        (plugin(), {"memory": "2Gi", "ephemeral-storage": "2Gi"}, {"cpu": "250m", "memory": "256Mi"}),
        (
            plugin(resources={"limits": {"memory": "64Mi"}}, runtimeClassName="gvisor"),
            {"memory": "64Mi", "ephemeral-storage": "2Gi"},
            {"cpu": "250m", "memory": "64Mi"},
        ),
    ]:
        actions = decide(job, Children(workspace=True, policy=True), plug=plug)
        (manifest,) = [a.manifest for a in actions if isinstance(a, Create)]
        assert manifest["spec"]["containers"][0]["resources"] == {"limits": limits, "requests": requests}
    assert manifest["spec"]["runtimeClassName"] == "gvisor"


def test_an_admitted_job_runs_its_plugin_snapshot_whatever_became_of_the_plugin():
    from kubecircus.operator.decide import admit

    from jobbuilders import NOW

    queued = JobBuilder("j").phase("Queued").build()
    patch = admit(queued, plugin(image="localhost/p@sha256:" + "a" * 64, timeoutSeconds=77), NOW).patch
    assert patch["phase"] == "Staging" and patch["pluginSpec"]["image"].endswith("a" * 64)
    running = JobBuilder("j").phase("Running", pluginSpec=patch["pluginSpec"]).build()
    # the Plugin was deleted (None) or edited to another image: the snapshot runs
    for registered in (None, plugin(image="localhost/evil:latest")):
        actions = reconcile(running, registered, Children(workspace=True, policy=True), CONFIG, NOW).actions
        (manifest,) = [a.manifest for a in actions if isinstance(a, Create)]
        assert manifest["spec"]["containers"][0]["image"].endswith("a" * 64)
        assert manifest["spec"]["activeDeadlineSeconds"] == 77


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            "Pod ephemeral local storage usage exceeds the total limit of containers 64Mi.",
            "StorageLimitExceeded",
        ),
        ('Usage of EmptyDir volume "plugin-tmp" exceeds the limit "1Gi".', "StorageLimitExceeded"),
        ("The node was low on resource: ephemeral-storage. Threshold quantity: 1Gi.", None),
    ],
)
def test_an_eviction_for_the_plugins_own_disk_use_is_its_fault(message, reason):
    job = JobBuilder("j").phase("Running", launched="Running").build()
    evicted = pod("j-run", "Failed", reason="Evicted")
    from dataclasses import replace

    children = Children(pods={"run": replace(evicted, message=message)}, workspace=True, policy=True)
    (patch,) = statuses(decide(job, children))
    if reason:
        assert (patch["phase"], patch["reason"]) == ("Failed", reason) and message in patch["message"]
    else:
        assert patch["attempt"] == 1 and "phase" not in patch  # the node's trouble: retried


def test_a_capped_priority_is_told_with_an_event():
    config = OperatorConfig(identity="t", max_priority=100, namespace_max_priority="team=10")
    actions = decide(JobBuilder(namespace="team").spec(priority=500).build(), config=config)
    (warning,) = [a for a in actions if isinstance(a, Warn)]
    assert warning.event.reason == "PriorityCapped" and "counts as 10" in warning.event.message
    assert not [
        a
        for a in decide(JobBuilder(namespace="team").spec(priority=5).build(), config=config)
        if isinstance(a, Warn)
    ]


@pytest.mark.parametrize("gpus", [0, 1])
def test_every_pod_of_a_job_goes_where_its_plugin_can_run(gpus):
    """A node-local workspace is made on the node of the job's first pod (stage): if that node
    cannot run the plug-in (no GPU, a missing label, an untolerated taint), the job is stuck."""
    config = OperatorConfig(
        identity="t", gpu_node_selector="nvidia.com/gpu.present=true", overlap_staging=True
    )
    spec = {
        "gpus": gpus,
        "nodeSelector": {"example.org/scanner-lab": "b"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "imaging", "effect": "NoSchedule"}
        ],
    }
    plug = plugin(**spec)
    pods = []
    for phase, children in [
        ("Staging", Children(workspace=True, policy=True)),
        ("Running", Children(workspace=True, policy=True)),
        ("Collecting", Children(workspace=True, policy=True)),
    ]:
        job = JobBuilder("j").phase(phase, pluginSpec=plug.spec.model_dump(by_alias=True, exclude_none=True))
        for a in decide(job.build(), children, plug=plug, config=config):
            if isinstance(a, Create) and a.manifest["kind"] == "Pod":
                pods.append((a.manifest["metadata"]["name"], a.manifest["spec"]))
    assert len(pods) == 4  # stage, the early run pod, run, collect
    wanted = {"example.org/scanner-lab": "b", **({"nvidia.com/gpu.present": "true"} if gpus else {})}
    for phase, spec_ in pods:
        assert spec_["nodeSelector"] == wanted, phase
        assert spec_["tolerations"] == [
            {"key": "dedicated", "operator": "Equal", "value": "imaging", "effect": "NoSchedule"}
        ], phase


def test_an_early_plugin_pod_is_late_only_counting_from_the_start_of_running():
    """It was made with the stage pod: a long staging is not the plug-in pod's delay."""
    from datetime import timedelta

    from jobbuilders import NOW

    def running_since(stamp: str):
        condition = {"type": "Running", "status": "True", "reason": "Staged", "lastTransitionTime": stamp}
        return JobBuilder("j").phase("Running", launched="Running", conditions=[condition]).build()

    waiting = PodView(
        "j-run",
        "Pending",
        created=NOW - timedelta(seconds=CONFIG.pending_deadline_seconds + 300),
        unschedulable="0/1 nodes: Insufficient nvidia.com/gpu",
    )
    children = Children(pods={"run": waiting}, workspace=True, policy=True)
    assert statuses(decide(running_since("2026-01-02T03:03:05Z"), children)) == []  # a minute ago
    (patch,) = statuses(decide(running_since("2026-01-02T02:50:00Z"), children))  # 14 min ago
    assert patch["reason"] == "Unschedulable"
