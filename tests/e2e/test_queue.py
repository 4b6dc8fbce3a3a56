"""Queue semantics on the real operator: priority, the global limit, suspend, cancel, resubmit."""

from __future__ import annotations

import threading
import time

from e2ekit import GROUP, VERSION

ACTIVE = {"Staging", "Running", "Collecting"}
QUICK = "echo '{}' > /circus/out/results.json"


def _watch_active(custom, stop: threading.Event, peaks: list[int]) -> None:
    while not stop.is_set():
        items = custom.list_cluster_custom_object(GROUP, VERSION, "pluginjobs")["items"]
        peaks.append(sum(1 for j in items if (j.get("status") or {}).get("phase") in ACTIVE))
        time.sleep(0.2)


def test_priority_order_and_one_job_at_a_time(custom, jobs, make_plugin):
    plugin = make_plugin("sleep 2; " + QUICK)
    stop, peaks = threading.Event(), []
    watcher = threading.Thread(target=_watch_active, args=(custom, stop, peaks), daemon=True)
    watcher.start()
    try:
        jobs.create("a", plugin)
        jobs.wait("a", ACTIVE)
        jobs.create("b", plugin)
        time.sleep(1)
        jobs.create("c", plugin, priority=10)
        jobs.wait("b", {"Queued"})
        time.sleep(2)  # the scheduler has seen both waiting jobs
        assert jobs.status("c").get("queuePosition") == 1 and jobs.status("b").get("queuePosition") == 2
        # kept as each finishes: with the tests' one-minute history TTL, "a" may be gone at the end
        final = {name: jobs.wait(name, {"Succeeded", "Failed"}) for name in ("a", "c", "b")}
    finally:
        stop.set()
        watcher.join()
    assert {n: s["phase"] for n, s in final.items()} == dict.fromkeys("acb", "Succeeded")
    starts = {n: final[n]["startTime"] for n in ("a", "b", "c")}
    assert starts["a"] <= starts["c"] <= starts["b"]
    assert max(peaks) == 1  # maxConcurrentJobs=1 (CIRCUS CS) was never exceeded
    assert all("queuePosition" not in final[n] for n in ("a", "b", "c"))


def test_suspend_holds_a_job_until_resumed(jobs, make_plugin):
    plugin = make_plugin(QUICK)
    jobs.create("held", plugin, suspend=True)
    jobs.wait("held", {"Queued"})
    time.sleep(6)  # more than a scheduler round
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


def test_resubmit_runs_a_failed_job_again(jobs, make_plugin):
    plugin = make_plugin("if [ -f /circus/out/../marker ]; then exit 0; fi; exit 4")
    jobs.create("again", plugin)
    assert jobs.wait("again", {"Failed"})["exitCode"] == 4
    jobs.patch("again", {"metadata": {"annotations": {"kubecircus.io/resubmit": "1"}}})
    status = jobs.wait("again", {"Queued", "Staging", "Running", "Collecting"}, timeout=60)
    assert status.get("resubmitted") == "1"
    final = jobs.wait("again", {"Failed", "Succeeded"})
    assert final["exitCode"] == 4 and final["resubmitted"] == "1"
    assert [c["type"] for c in final["conditions"]].count("Failed") == 1


def test_invalidate_only_after_success(jobs, make_plugin):
    jobs.create("valid", make_plugin(QUICK))
    assert jobs.wait("valid", {"Succeeded"})["phase"] == "Succeeded"
    jobs.patch("valid", {"spec": {"invalidated": True}})
    assert jobs.get("valid")["spec"]["invalidated"] is True
    assert jobs.status("valid")["phase"] == "Succeeded"
