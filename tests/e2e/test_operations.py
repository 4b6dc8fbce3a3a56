"""Operating the operator: SIGKILL in the middle of a job, history TTL, metrics, leadership."""

from __future__ import annotations

import time
import urllib.request

from kubernetes import client

from e2ekit import SYSTEM, launches, max_concurrent, operator_pod, operator_pods, wait_operator_ready


def test_sigkill_while_running_still_finishes_the_job_exactly_once(core, jobs, ns, make_plugin):
    plugin = make_plugin("echo run-$(date +%s%N) ; sleep 10; echo '{}' > /circus/out/results.json")
    jobs.create("survivor", plugin)
    jobs.wait("survivor", {"Running"})
    time.sleep(4)  # the plug-in pod is up
    run_pods = core.list_namespaced_pod(ns, label_selector="kubecircus.io/role=run").items
    assert len(run_pods) == 1
    victim = operator_pod(core).metadata.name
    core.delete_namespaced_pod(victim, SYSTEM, grace_period_seconds=0)  # SIGKILL
    wait_operator_ready(core, victim)
    status = jobs.wait("survivor", {"Succeeded", "Failed"})
    assert status["phase"] == "Succeeded", status
    assert launches(core, ns, jobs.child("survivor", "run")) == 1  # the plug-in pod was launched once
    events = core.list_namespaced_event(ns, field_selector="involvedObject.name=survivor").items
    assert [e.reason for e in events].count("Completed") == 1
    assert status["attempt"] == 0  # the running pod was adopted, not relaunched


def test_finished_jobs_expire_after_the_history_ttl(jobs, make_plugin):
    """make deploy for the tests sets history.ttlSeconds=60 (the default keeps jobs a week)."""
    jobs.create("ephemeral", make_plugin("echo '{}' > /circus/out/results.json"))
    jobs.wait("ephemeral", {"Succeeded"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            jobs.get("ephemeral")
        except client.exceptions.ApiException as exc:
            assert exc.status == 404
            return
        time.sleep(2)
    raise AssertionError("the finished job was not deleted after its TTL")


def test_metrics_and_healthz(core):
    pod = operator_pod(core)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the pod IP, never a proxy
    base = f"http://{pod.status.pod_ip}:8080"
    assert opener.open(f"{base}/healthz", timeout=5).read() == b"ok\n"
    text = opener.open(f"{base}/metrics", timeout=5).read().decode()
    for name in (
        "kubecircus_jobs{",
        "kubecircus_queue_length",
        "kubecircus_leader 1.0",
        "kubecircus_phase_duration_seconds_bucket",
    ):
        assert name in text, name


def test_exactly_one_replica_holds_the_lease(k8s, core):
    lease = client.CoordinationV1Api(k8s).read_namespaced_lease("kubecircus-operator", SYSTEM)
    assert lease.spec.holder_identity == operator_pod(core).metadata.name


def test_the_standby_takes_over_when_the_leader_dies_mid_queue_and_the_limit_holds(
    k8s, core, jobs, ns, make_plugin
):
    """Two replicas; the leader is killed (SIGKILL, no lease release) while the first of four
    jobs runs. The standby takes the lease, adopts the running job and works through the rest;
    maxConcurrentJobs=1 holds across the change, from the operator's own start and end times."""
    apps = client.AppsV1Api(k8s)
    leases = client.CoordinationV1Api(k8s)
    apps.patch_namespaced_deployment_scale("kubecircus-operator", SYSTEM, {"spec": {"replicas": 2}})
    try:
        deadline = time.monotonic() + 120
        while len([p for p in operator_pods(core) if p.status.phase == "Running"]) < 2:
            assert time.monotonic() < deadline, "the second replica did not start"
            time.sleep(1)
        while (
            holder := leases.read_namespaced_lease("kubecircus-operator", SYSTEM).spec.holder_identity
        ) not in {p.metadata.name for p in operator_pods(core)}:  # a replica of an earlier deploy
            assert time.monotonic() < deadline, f"no running replica holds the lease ({holder})"
            time.sleep(1)
        standby = next(p.metadata.name for p in operator_pods(core) if p.metadata.name != holder)
        deadline = time.monotonic() + 30
        while "standby" not in core.read_namespaced_pod_log(standby, SYSTEM):
            assert time.monotonic() < deadline, "the second replica does not report standing by"
            time.sleep(1)
        plugin = make_plugin("sleep 3; echo '{}' > /circus/out/results.json")
        names = ("r1", "r2", "r3", "r4")
        for name in names:
            jobs.create(name, plugin)
        jobs.wait("r1", {"Running"})
        core.delete_namespaced_pod(holder, SYSTEM, grace_period_seconds=0)  # the leader dies
        statuses = [jobs.wait(name, {"Succeeded", "Failed"}, timeout=300) for name in names]
        assert [s["phase"] for s in statuses] == ["Succeeded"] * 4, statuses
        assert leases.read_namespaced_lease("kubecircus-operator", SYSTEM).spec.holder_identity == standby
        assert max_concurrent(statuses) == 1
        for name in names:  # each plug-in ran exactly once, each job completed exactly once
            assert launches(core, ns, jobs.child(name, "run")) == 1, name
            events = core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
            assert [e.reason for e in events].count("Completed") == 1, name
    finally:
        apps.patch_namespaced_deployment_scale("kubecircus-operator", SYSTEM, {"spec": {"replicas": 1}})
        deadline = time.monotonic() + 120
        while len(operator_pods(core)) != 1:
            assert time.monotonic() < deadline, "the deployment did not scale back"
            time.sleep(1)


def test_a_lost_plugin_pod_is_launched_again_after_a_backoff(core, jobs, ns, make_plugin):
    """Node loss, as the operator sees it: the plug-in pod vanishes mid-run."""
    plugin = make_plugin("echo run; sleep 6; echo '{}' > /circus/out/results.json")
    jobs.create("resilient", plugin)
    jobs.wait("resilient", {"Running"})
    deadline = time.monotonic() + 60
    while not (pods := core.list_namespaced_pod(ns, label_selector="kubecircus.io/role=run").items):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    core.delete_namespaced_pod(pods[0].metadata.name, ns, grace_period_seconds=0)
    status = jobs.wait("resilient", {"Succeeded", "Failed"})
    assert status["phase"] == "Succeeded", status
    assert status["attempt"] == 1
    reasons = [
        e.reason for e in core.list_namespaced_event(ns, field_selector="involvedObject.name=resilient").items
    ]
    assert reasons.count("Retrying") == 1
