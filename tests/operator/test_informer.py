"""The informer cache's rules (pure), and what a woken scheduler round costs with it."""

from __future__ import annotations

import pytest

from kubecircus.operator.config import OperatorConfig
from kubecircus.operator.engine import Engine
from kubecircus.operator.informer import TOMBSTONES, Caches, Informer, newer

from jobbuilders import JobBuilder


@pytest.mark.parametrize(
    ("candidate", "current", "expected"),
    [
        ("12", "11", True),
        ("11", "12", False),
        ("12", "12", True),  # the same version again: harmless
        ("100", "99", True),  # numbers, not strings: "100" < "99" as text
        ("99", "100", False),
        ("12", None, True),
        (None, "12", True),
        ("opaque-b", "opaque-a", True),  # not etcd's integers: the latest word wins
    ],
)
def test_newer_compares_etcd_versions_as_numbers(candidate, current, expected):
    assert newer(candidate, current) is expected


def body(name: str, version: str, namespace: str = "team", **extra) -> dict:
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": version}, **extra}


def informer() -> Informer:
    return Informer("test", lambda *a, **k: {"items": []})


def test_our_write_is_seen_at_once_and_an_older_event_does_not_undo_it():
    cache = informer()
    cache.replace_all([body("a", "10", status={"phase": "Queued"})], "10")
    cache.remember(body("a", "12", status={"phase": "Staging"}))  # our admission
    cache._apply_event("MODIFIED", body("a", "11", status={"phase": "Queued"}))  # still in flight
    assert cache.get("team", "a")["status"]["phase"] == "Staging"
    cache._apply_event("MODIFIED", body("a", "13", status={"phase": "Running"}))
    assert cache.get("team", "a")["status"]["phase"] == "Running"


def test_a_deleted_object_is_not_brought_back_by_a_late_patch_response():
    cache = informer()
    cache.replace_all([body("a", "10")], "10")
    cache._apply_event("DELETED", body("a", "14"))
    cache.remember(body("a", "13"))  # our patch, answered before the deletion, arriving after
    assert cache.get("team", "a") is None and cache.items() == []
    cache._apply_event("ADDED", body("a", "20"))  # a new object of the same name
    assert cache.get("team", "a")["metadata"]["resourceVersion"] == "20"


def test_tombstones_are_bounded():
    cache = informer()
    for i in range(TOMBSTONES + 50):
        cache._apply_event("DELETED", body(f"j{i}", str(i)))
    assert len(cache._gone) == TOMBSTONES
    cache.remember(body("j0", "1"))  # its tombstone aged out: remembered again
    assert cache.get("team", "j0") is not None


def test_a_relist_replaces_everything_but_keeps_our_later_writes_and_tombstones():
    cache = informer()
    cache.replace_all([body("a", "1"), body("b", "2"), body("d", "3")], "3")
    cache._apply_event("DELETED", body("a", "4"))
    assert sorted(b["metadata"]["name"] for b in cache.items()) == ["b", "d"]
    cache.remember(body("b", "12", status={"phase": "Staging"}))  # our write, after the LIST below
    cache.replace_all([body("b", "2"), body("c", "9")], "10")  # read before the write landed
    assert cache.get("team", "b")["status"]["phase"] == "Staging"
    assert cache.get("team", "c") is not None and cache.get("team", "d") is None  # d went meanwhile
    cache.remember(body("a", "3"))  # a late answer about the deleted job: not brought back
    cache.remember(body("d", "5"))  # absent from a LIST taken after it: deleted, not brought back
    assert cache.get("team", "a") is None and cache.get("team", "d") is None
    cache.remember(body("e", "11"))  # a new job our write saw before the watch did
    assert cache.get("team", "e") is not None


def test_a_cache_that_has_not_heard_from_the_server_lately_is_not_trusted(monkeypatch):
    import time

    cache = informer()
    cache.replace_all([], "1")
    assert cache.synced
    later = time.monotonic() + 2 * 300 + 61
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert not cache.synced


class WritesOnly:
    """The API server as a woken round with a synced cache should use it: status patches
    (recorded) and, only to admit, one LIST of the jobs (counted); any other read fails."""

    def __init__(self, bodies: list[dict]) -> None:
        self.patches: list[dict] = []
        self.lists = 0
        self.bodies = bodies
        self.patched = lambda body: None

    def all_jobs(self, namespaces=()):
        self.lists += 1
        return self.bodies

    def apply(self, job, action, version):
        self.patches.append(action.patch)
        return version

    def __getattr__(self, name: str):
        raise AssertionError(f"a woken round read the API server ({name})")


def synced_caches(jobs: list[dict], plugins: list[dict]) -> Caches:
    class Custom:
        list_cluster_custom_object = list_namespaced_custom_object = None

    caches = Caches(Custom(), "kubecircus.io", "v1alpha1")
    for one in caches._jobs.values():
        one.replace_all(jobs, "1")
    caches.plugin_informer.replace_all(plugins, "1")
    return caches


def test_a_woken_round_admits_from_the_cache_and_reads_nothing():
    plugin_body = {
        "metadata": {"name": "lesion", "resourceVersion": "1"},
        "spec": {"image": "localhost/p:dev", "version": "1.0.0"},
    }
    queued = [JobBuilder(f"q{i}").phase("Queued").body for i in range(300)]
    running = JobBuilder("busy").phase("Running").body
    kube = WritesOnly([running, *queued])
    engine = Engine(kube=kube, store=None, config=OperatorConfig(identity="t", max_concurrent_jobs=2))  # type: ignore[arg-type]
    engine.caches = synced_caches([running, *queued], [plugin_body])
    due = engine.schedule_once(sweep=False)
    assert due == [("team", "q0")]  # admitted, and nothing else: the active job waits for the sweep
    assert kube.lists == 1  # the admission checked against one fresh LIST
    assert kube.patches[0]["phase"] == "Staging"
    # positions only for the first waiting jobs, never one write per waiting job
    assert len(kube.patches) <= 1 + OperatorConfig(identity="t").queue_positions_shown
    assert ("team", "busy") in engine.schedule_once(sweep=True)


def test_an_admission_the_cache_suggests_is_checked_against_a_fresh_list():
    plugin_body = {"metadata": {"name": "lesion"}, "spec": {"image": "localhost/p:dev", "version": "1.0.0"}}
    waiting = JobBuilder("q0").phase("Queued").body
    # the cache missed that another job took the only slot a moment ago
    taken = JobBuilder("other").phase("Staging").body
    kube = WritesOnly([taken, waiting])
    engine = Engine(kube=kube, store=None, config=OperatorConfig(identity="t", max_concurrent_jobs=1))  # type: ignore[arg-type]
    engine.caches = synced_caches([JobBuilder("other").phase("Queued").body, waiting], [plugin_body])
    assert engine.schedule_once(sweep=False) == []
    assert not [p for p in kube.patches if p.get("phase") == "Staging"]  # nobody over the limit


class Recording:
    """The API server for one reconcile: writes recorded, each read counted (and answered)."""

    def __init__(self, jobs: dict) -> None:
        self.jobs, self.calls = jobs, []
        self.patched = lambda body: None

    def job(self, namespace, name):
        self.calls.append("job")
        return self.jobs.get(name)

    def plugin(self, name):
        self.calls.append("plugin")

    def children(self, job):
        self.calls.append("children")
        from kubecircus.operator.observe import Children

        return Children()

    def apply(self, job, action, version):
        self.calls.append(type(action).__name__)
        return version

    def set_finalizer(self, job, finalizer, present, version):
        self.calls.append("SetFinalizer")
        return version


def plugin_body(name: str = "lesion") -> dict:
    return {
        "metadata": {"name": name, "resourceVersion": "1"},
        "spec": {"image": "localhost/p:dev", "version": "1.0.0"},
    }


def test_a_new_job_is_queued_from_its_event_without_a_single_read():
    new = JobBuilder("fresh").body
    kube = Recording({"fresh": new})
    engine = Engine(kube=kube, store=None, config=OperatorConfig(identity="t"))  # type: ignore[arg-type]
    engine.caches = synced_caches([], [plugin_body()])
    engine.reconcile_job("team", "fresh", seen=new)
    # the event's body, the cached Plugin, and no children to list, then the three writes
    assert kube.calls[:3] == ["Create", "SetFinalizer", "PatchStatus"]


def test_a_plugin_the_cache_has_not_seen_yet_is_read_not_declared_missing():
    new = JobBuilder("fresh").phase("Queued").body
    kube = Recording({"fresh": new})
    engine = Engine(kube=kube, store=None, config=OperatorConfig(identity="t"))  # type: ignore[arg-type]
    engine.caches = synced_caches([], [])
    engine.reconcile_job("team", "fresh", seen=new)
    assert kube.calls[0] == "plugin"


def test_the_newer_of_the_event_and_the_cache_is_decided_on():
    older = JobBuilder("j").phase("Queued").body
    older["metadata"]["resourceVersion"] = "5"
    cancelled = JobBuilder("j").phase("Queued").spec(cancel=True).body
    cancelled["metadata"]["resourceVersion"] = "9"
    kube = Recording({"j": cancelled})
    engine = Engine(kube=kube, store=None, config=OperatorConfig(identity="t"))  # type: ignore[arg-type]
    engine.caches = synced_caches([cancelled], [plugin_body()])
    engine.reconcile_job("team", "j", seen=older)  # a late event: the cache knows better
    assert "job" not in kube.calls
    assert "PatchStatus" in kube.calls  # cancelled: decided on the cached, newer body


def test_a_quota_refusing_the_collect_pod_moves_the_job_and_retries_collect_not_the_plugin():
    from kubecircus.operator.actions import Create, PatchStatus
    from kubecircus.operator.kube import Refused
    from kubecircus.operator.observe import Children, ContainerView

    from jobbuilders import pod

    ran = JobBuilder("j").phase("Running", launched="Running").body
    ran["status"]["pluginSpec"] = {"image": "localhost/p:dev", "version": "1.0.0", "timeoutSeconds": 60}

    class QuotaFull:
        def __init__(self) -> None:
            self.body, self.patches = ran, []

        def job(self, namespace, name):
            return self.body

        def children(self, job):
            if job.status.phase == "Running":
                main = ContainerView("plugin", exit_code=0, image_id="localhost/p@sha256:" + "c" * 64)
                return Children(
                    pods={"run": pod("j-run", "Succeeded", plugin=main)}, workspace=True, policy=True
                )
            return Children(workspace=True, policy=True)

        def log(self, *args, **kwargs):
            return "done\n"

        def apply(self, job, action, version):
            if isinstance(action, Create) and action.manifest["kind"] == "Pod":
                raise Refused("Pod", action.manifest["metadata"]["name"], "exceeded quota: pods=1")
            if isinstance(action, PatchStatus):
                self.patches.append(action.patch)
                self.body = {**self.body, "status": {**self.body["status"], **action.patch}}
            return version

        def replace_secret(self, manifest, data):
            pass

    class Store:
        def mint(self, *args):
            return {}

        def put_log(self, *args):
            pass

    kube = QuotaFull()
    engine = Engine(kube=kube, store=Store(), config=OperatorConfig(identity="t", progress_interval=3600))  # type: ignore[arg-type]
    engine.reconcile_job("team", "j")
    moved = kube.patches[0]
    assert moved["phase"] == "Collecting" and moved["launched"] is None and moved["exitCode"] == 0
    retried = kube.patches[1]
    assert retried["attempt"] == 1 and "quota" in retried["message"] and "phase" not in retried
    assert kube.body["status"]["phase"] == "Collecting"  # the plug-in's success stands


def test_a_failed_admission_list_skips_admission_but_not_the_sweep():
    from kubernetes.client.rest import ApiException

    plugin_body = {"metadata": {"name": "lesion"}, "spec": {"image": "localhost/p:dev", "version": "1.0.0"}}
    waiting = JobBuilder("q0").phase("Queued").body
    running = JobBuilder("busy").phase("Running").body

    class ListFails(WritesOnly):
        def all_jobs(self, namespaces=()):
            raise ApiException(status=503, reason="unavailable")

    kube = ListFails([])
    engine = Engine(kube=kube, store=None, config=OperatorConfig(identity="t", max_concurrent_jobs=2))  # type: ignore[arg-type]
    engine.caches = synced_caches([running, waiting], [plugin_body])
    due = engine.schedule_once(sweep=True)
    assert due == [("team", "busy")]  # the job in flight is still swept
    assert not [p for p in kube.patches if p.get("phase") == "Staging"]  # nobody admitted unchecked
