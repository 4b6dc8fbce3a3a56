"""The plug-in pod made with the stage pod (``jobs.overlapStaging``, opt-in: the chart is upgraded
for this module and restored after it): it exists while staging runs, the plug-in gets its
timeout from its own start and no more, and a quota that refuses the head start costs the job
nothing."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import pytest
from kubernetes import client

from e2ekit import upgrade_chart

RESULTS = "echo '{}' > /circus/out/results.json"


@pytest.fixture(scope="module", autouse=True)
def overlap_staging():
    upgrade_chart("jobs.overlapStaging=true")
    try:
        yield
    finally:
        upgrade_chart("jobs.overlapStaging=false")


class Sightings:
    """What the test sees of the job's run pod and phase, every 0.2 s while the job runs."""

    def __init__(self, core: client.CoreV1Api, jobs: Any, name: str) -> None:
        self.core, self.jobs, self.name = core, jobs, name
        self.seen: list[tuple[str | None, int | None, str]] = []  # (phase, deadline, pod phase)
        #: seconds from the pod's start to prepare's end, once prepare has ended
        self.prepared_after: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._look, daemon=True)

    def __enter__(self) -> Sightings:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _look(self) -> None:
        run = self.jobs.child(self.name, "run")
        while not self._stop.is_set():
            phase = self.jobs.status(self.name).get("phase")
            try:
                pod = self.core.read_namespaced_pod(run, self.jobs.ns)
            except client.exceptions.ApiException as exc:
                if exc.status != 404:
                    raise
            else:
                self.seen.append((phase, pod.spec.active_deadline_seconds, pod.status.phase))
                for status in pod.status.init_container_statuses or []:
                    ended = status.state.terminated
                    if ended and ended.finished_at and pod.status.start_time:
                        self.prepared_after = (ended.finished_at - pod.status.start_time).total_seconds()
            time.sleep(0.2)


def test_the_plugin_pod_starts_during_staging_and_gets_exactly_its_timeout(core, jobs, make_plugin):
    plugin = make_plugin(f"sleep 1; {RESULTS}")
    jobs.create("early", plugin, timeoutSeconds=30)
    with Sightings(core, jobs, "early") as sightings:
        status = jobs.wait("early", {"Succeeded", "Failed"})
    assert (status["phase"], status.get("attempt", 0)) == ("Succeeded", 0), status
    deadlines = [deadline for _, deadline, _ in sightings.seen]
    # there before staging ended, allowed to wait as long as the stage pod's deadline as well
    # (the cut lands a moment before the status moves on: a read may see both)
    staging = [d for phase, d, _ in sightings.seen if phase == "Staging"]
    assert staging and max(staging) > 30 + 60, sightings.seen
    # then cut, never raised again: the timeout counts from staging's end, at the latest from
    # prepare's (the plug-in's start), never later
    assert sightings.prepared_after is not None
    assert 30 <= deadlines[-1] <= 30 + math.ceil(sightings.prepared_after), sightings.seen
    assert deadlines == sorted(deadlines, reverse=True)


def test_a_quota_that_refuses_the_early_pod_only_delays_it(core, jobs, ns, make_plugin):
    quota = {"metadata": {"name": "one-pod"}, "spec": {"hard": {"pods": "1"}}}
    core.create_namespaced_resource_quota(ns, quota)
    deadline = time.monotonic() + 30
    while not (core.read_namespaced_resource_quota("one-pod", ns).status.hard or {}):
        assert time.monotonic() < deadline, "the quota controller never counted the namespace"
        time.sleep(0.5)
    jobs.create("quota", make_plugin(RESULTS), timeoutSeconds=30)
    with Sightings(core, jobs, "quota") as sightings:
        status = jobs.wait("quota", {"Succeeded", "Failed"})
    # the head start was refused (the stage pod is the namespace's one pod): made after staging,
    # with the plain timeout, in the same attempt
    assert (status["phase"], status.get("attempt", 0)) == ("Succeeded", 0), status
    assert {deadline for _, deadline, _ in sightings.seen} == {30}, sightings.seen
