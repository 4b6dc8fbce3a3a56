"""/healthz reports a stuck or dead scheduler loop (so the kubelet restarts the replica)."""

from __future__ import annotations

import urllib.error
import urllib.request

from kubecircus.operator import metrics
from kubecircus.operator.config import OperatorConfig
from kubecircus.operator.engine import Engine

from miniotest import free_port


def test_healthz_follows_the_scheduler_loop(monkeypatch):
    engine = Engine(kube=None, store=None, config=OperatorConfig(identity="t"))  # type: ignore[arg-type]
    monkeypatch.setattr(metrics, "HEALTH_CHECK", engine.health)
    port = free_port("127.0.0.1")
    server = metrics.serve(port)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        assert opener.open(f"http://127.0.0.1:{port}/healthz", timeout=5).read() == b"ok\n"
        engine._round_at -= 3600  # the loop last came round an hour ago
        try:
            opener.open(f"http://127.0.0.1:{port}/healthz", timeout=5)
            raise AssertionError("healthz still said ok")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503 and "scheduler loop" in exc.reason
    finally:
        server.shutdown()


class Untouchable:
    """A stand-in for the API server and the store that fails the test if anything is asked."""

    def __init__(self, asked: list[str]) -> None:
        self.__dict__["asked"] = asked

    def __getattr__(self, name: str):
        self.asked.append(name)  # the scheduler loop swallows errors: count them too
        raise AssertionError(f"a replica that does not lead used {name}")


def test_a_replica_that_does_not_lead_writes_nothing():
    import threading

    import pytest

    from kubecircus.operator.actions import PatchStatus
    from kubecircus.operator.engine import NotLeading

    from jobbuilders import JobBuilder

    asked: list[str] = []
    engine = Engine(kube=Untouchable(asked), store=Untouchable(asked), config=OperatorConfig(identity="t"))  # type: ignore[arg-type]
    engine.leading = lambda: False
    with pytest.raises(NotLeading):
        engine._apply(JobBuilder().build(), [PatchStatus({"phase": "Staging"})])
    engine.sweep_cache()  # no sweep either
    stop = threading.Event()
    engine.wake.set()
    loop = threading.Thread(target=engine.run_scheduler, args=(stop,))
    loop.start()
    stop.set()
    engine.wake.set()
    loop.join(timeout=10)
    assert not loop.is_alive() and asked == []


class ListingOnly:
    """The API server as the scheduler round should use it for parked jobs: one listing of jobs
    and one of Plugins; status patches are recorded; any per-job read is counted."""

    def __init__(self, bodies: list[dict], plugins: dict) -> None:
        self.bodies, self._plugins = bodies, plugins
        self.reads: list[str] = []
        self.patches: list[dict] = []

    def all_jobs(self, namespaces=()):
        return self.bodies

    def plugins(self):
        return self._plugins

    def apply(self, job, action, version):
        if hasattr(action, "patch"):
            self.patches.append(action.patch)
        return version

    def __getattr__(self, name: str):
        self.reads.append(name)
        raise AssertionError(f"a parked job cost a {name} call")


def test_parked_jobs_cost_the_scheduler_round_no_call_each():
    from jobbuilders import JobBuilder, plugin

    plug = plugin("lesion", maxConcurrent=1)
    running = JobBuilder("busy").phase("Running")
    parked = [JobBuilder(f"q{i}").phase("Queued") for i in range(200)]
    doomed = (
        JobBuilder("doomed").phase("Queued").spec(inputs=[{"source": {"bucket": "dicom", "prefix": "x/"}}])
    )
    bodies = [j.body for j in [running, *parked, doomed]]
    kube = ListingOnly(bodies, {"lesion": plug})
    engine = Engine(kube=kube, store=None, config=OperatorConfig(identity="t", max_concurrent_jobs=1))  # type: ignore[arg-type]
    due = engine.schedule_once()
    assert due == [("team", "busy")]  # only the active job is reconciled in full
    assert kube.reads == []
    failed = [p for p in kube.patches if p.get("phase") == "Failed"]
    assert len(failed) == 1 and failed[0]["reason"] == "InputForbidden"  # still judged, from the listing


def test_job_locks_serialise_a_job_and_do_not_pile_up():
    import threading
    import time as clock

    inside: list[int] = []
    overlap = []

    class Slow:
        def job(self, namespace, name):
            inside.append(1)
            if len(inside) > 1:
                overlap.append(name)
            if name == "same":
                clock.sleep(0.05)
            inside.pop()
            # gone: nothing more to do

    engine = Engine(kube=Slow(), store=None, config=OperatorConfig(identity="t"))  # type: ignore[arg-type]
    threads = [threading.Thread(target=engine.reconcile_job, args=("team", "same")) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlap == []  # never two reconciles of one job at once
    for i in range(1000):  # names from events, many never jobs at all
        engine.reconcile_job("team", f"made-up-{i}")
    assert engine._locks == {}


def test_only_a_job_name_from_a_pod_annotation_is_followed():
    from kubecircus.operator.handlers import JOB_NAME

    assert JOB_NAME.fullmatch("scan-1.b") and JOB_NAME.fullmatch("a" * 253)
    for bad in ("a" * 254, "A", "x" * 250_000, "a/b", "-a", ""):
        assert not JOB_NAME.fullmatch(bad), bad[:20]


def test_a_job_that_ends_wakes_the_scheduler_to_fill_its_slot_at_once():
    from kubecircus.operator.observe import Children

    from jobbuilders import JobBuilder, exited, plugin, pod

    body = JobBuilder("done").phase("Running", launched="Running").body
    failed = pod("done-run", "Failed", plugin=exited("plugin", 3))

    class OneJob:
        def job(self, namespace, name):
            return body

        def plugin(self, name):
            return plugin()

        def children(self, job):
            return Children(pods={"run": failed}, workspace=True, policy=True, run_log_tail="x\n")

        def log(self, *args, **kwargs):
            return "x\n"

        def apply(self, job, action, version):
            if hasattr(action, "patch") and action.patch.get("phase"):
                body["status"]["phase"] = action.patch["phase"]  # the next read sees it
            return version

        def set_finalizer(self, job, finalizer, present, version):
            return version

    class Store:
        def put_log(self, *args):
            pass

    engine = Engine(kube=OneJob(), store=Store(), config=OperatorConfig(identity="t"))  # type: ignore[arg-type]
    assert not engine.wake.is_set()
    engine.reconcile_job("team", "done")
    assert body["status"]["phase"] == "Failed" and engine.wake.is_set()
