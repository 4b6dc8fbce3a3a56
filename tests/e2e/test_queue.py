"""Queue semantics on the real operator: priority, the global limit, suspend, cancel, resubmit."""

from __future__ import annotations

import time

from e2ekit import launches, max_concurrent

ACTIVE = {"Staging", "Running", "Collecting"}
QUICK = "echo '{}' > /circus/out/results.json"


def _wait_position(jobs, name: str, position: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while jobs.status(name).get("queuePosition") != position:
        assert time.monotonic() < deadline, f"{name} never reached queue position {position}"
        time.sleep(0.3)


def test_priority_order_and_one_job_at_a_time(jobs, make_plugin):
    plugin = make_plugin("sleep 2; " + QUICK)
    jobs.create("a", plugin)
    jobs.wait("a", ACTIVE)
    jobs.create("b", plugin)
    _wait_position(jobs, "b", 1)
    jobs.create("c", plugin, priority=10)
    _wait_position(jobs, "c", 1)  # overtakes b
    _wait_position(jobs, "b", 2)
    # kept as each finishes: with the tests' one-minute history TTL, "a" may be gone at the end
    final = {name: jobs.wait(name, {"Succeeded", "Failed"}) for name in ("a", "c", "b")}
    assert {n: s["phase"] for n, s in final.items()} == dict.fromkeys("acb", "Succeeded")
    starts = {n: final[n]["startTime"] for n in ("a", "b", "c")}
    assert starts["a"] <= starts["c"] <= starts["b"]
    assert max_concurrent(list(final.values())) == 1  # maxConcurrentJobs=1 (CIRCUS CS)
    assert all("queuePosition" not in final[n] for n in ("a", "b", "c"))


def test_suspend_holds_a_job_until_resumed(jobs, make_plugin):
    plugin = make_plugin(QUICK)
    jobs.create("held", plugin, suspend=True)
    jobs.create("free", plugin)  # admitted while the suspended one, created first, waits
    assert jobs.wait("free", {"Succeeded", "Failed"})["phase"] == "Succeeded"
    assert jobs.status("held")["phase"] == "Queued"
    jobs.patch("held", {"spec": {"suspend": False}})
    assert jobs.wait("held", {"Succeeded", "Failed"})["phase"] == "Succeeded"


def test_cancel_while_running_deletes_the_plugin_pod(core, jobs, ns, make_plugin):
    jobs.create("doomed", make_plugin("sleep 120"))
    jobs.wait("doomed", {"Running"})
    deadline = time.monotonic() + 60
    while not core.list_namespaced_pod(ns, label_selector="kubecircus.io/role=run").items:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    jobs.patch("doomed", {"spec": {"cancel": True}})
    status = jobs.wait("doomed", {"Cancelled"})
    assert status["reason"] == "Cancelled"
    deadline = time.monotonic() + 30
    while [p for p in core.list_namespaced_pod(ns).items if not p.metadata.deletion_timestamp]:
        assert time.monotonic() < deadline, "the plug-in pod was not deleted"
        time.sleep(0.5)


def test_resubmit_runs_a_failed_job_again(core, jobs, make_plugin):
    plugin = make_plugin("if [ -f /circus/out/../marker ]; then exit 0; fi; exit 4")
    jobs.create("again", plugin)
    assert jobs.wait("again", {"Failed"})["exitCode"] == 4
    jobs.patch("again", {"metadata": {"annotations": {"kubecircus.io/resubmit": "1"}}})
    status = jobs.wait("again", {"Queued", "Staging", "Running", "Collecting"}, timeout=60)
    assert status.get("resubmitted") == "1"
    final = jobs.wait("again", {"Failed", "Succeeded"})
    assert final["exitCode"] == 4 and final["resubmitted"] == "1"
    events = core.list_namespaced_event(jobs.ns, field_selector="involvedObject.name=again").items
    reasons = [e.reason for e in events]
    assert reasons.count("Resubmitted") == 1
    # ran twice: once more, not more, but for the one retry a loaded machine may cause (prepare
    # saw a door open before the policy took effect: a new pod, by design); any other retry fails
    retries = [e.message for e in events if e.reason == "Retrying"]
    late_policy = [m for m in retries if "took effect only after" in m]
    assert len(late_policy) == len(retries), retries
    assert launches(core, jobs.ns, jobs.child("again", "run")) == 2 + len(late_policy), retries


def test_invalidate_only_after_success(jobs, make_plugin):
    jobs.create("valid", make_plugin(QUICK))
    assert jobs.wait("valid", {"Succeeded"})["phase"] == "Succeeded"
    jobs.patch("valid", {"spec": {"invalidated": True}})
    assert jobs.get("valid")["spec"]["invalidated"] is True
    assert jobs.status("valid")["phase"] == "Succeeded"


def test_a_priority_above_the_clusters_cap_counts_as_the_cap_and_says_so(core, jobs, make_plugin):
    jobs.create("vip", make_plugin(QUICK), priority=900)  # the chart caps at 100 by default
    assert jobs.wait("vip", {"Succeeded", "Failed"})["phase"] == "Succeeded"
    events = core.list_namespaced_event(jobs.ns, field_selector="involvedObject.name=vip").items
    (capped,) = [e for e in events if e.reason == "PriorityCapped"]
    assert "counts as 100" in capped.message
