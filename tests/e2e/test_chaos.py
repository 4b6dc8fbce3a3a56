"""Chaos: the operator SIGKILLed at random moments while a queue of short jobs runs.

Every job must end exactly once, with the phase and reason its plug-in earns; no plug-in pod may
be launched twice for the same attempt; every output and log is complete and comes from one
run. ``make test`` runs a short version (``KUBECIRCUS_CHAOS_JOBS``, default 8); ``make chaos``
runs 50 jobs.

A kill is a grace-0 pod deletion (SIGKILL): the Deployment makes a new pod, which must wait out
the dead leader's Lease before it operates. The next kill comes 5-20 s after the new pod is
Ready, so the operator dies in every phase of the jobs' lives, including before it leads.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from typing import Any

from kubernetes import client

from e2ekit import BUCKET, SYSTEM, launches, operator_pod, wait_operator_ready

JOBS = int(os.environ.get("KUBECIRCUS_CHAOS_JOBS", "8"))
KILL_AFTER = (5.0, 20.0)
TERMINAL = {"Succeeded", "Failed"}
log = logging.getLogger(__name__)

# Each run draws a token, says it in its log once, and (when it succeeds) writes it to an
# output and results.json: outputs and log must come from one and the same run.
RUN = 'tok=$(cat /proc/sys/kernel/random/uuid); echo "run-$tok"; sleep 2; '
GOOD = RUN + (
    'echo "$tok" > /circus/out/run.txt; '
    'echo "{\\"results\\": {\\"token\\": \\"$tok\\"}}" > /circus/out/results.json'
)
BAD = RUN + "exit 3"


class Killer(threading.Thread):
    """SIGKILLs the operator 5-20 s after each replacement is Ready, until stopped."""

    def __init__(self, core: client.CoreV1Api) -> None:
        super().__init__(daemon=True)
        self.core = core
        self.stop = threading.Event()
        self.kills = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.wait(random.uniform(*KILL_AFTER)):
                victim = operator_pod(self.core).metadata.name
                self.core.delete_namespaced_pod(victim, SYSTEM, grace_period_seconds=0)
                self.kills += 1
                wait_operator_ready(self.core, victim)
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.error = exc


def _log_runs(store, status: dict[str, Any]) -> list[str]:
    log = store.get_object(bucket_name=BUCKET, object_name=status["logRef"]["key"]).read().decode()
    return [line[4:] for line in log.splitlines() if line.startswith("run-")]


def _check_outputs(store, status: dict[str, Any], token: str) -> None:
    outputs = status["outputs"]
    manifest = json.loads(store.get_object(bucket_name=BUCKET, object_name=outputs["manifest"]).read())
    prefix = outputs["prefix"] + "out/"
    stored = {o.object_name for o in store.list_objects(bucket_name=BUCKET, prefix=prefix, recursive=True)}
    assert (
        stored
        == {prefix + o["name"] for o in manifest["outputs"]}
        == {prefix + "run.txt", prefix + "results.json"}
    )
    assert (
        store.get_object(bucket_name=BUCKET, object_name=prefix + "run.txt").read().decode().strip() == token
    )
    assert outputs["results"]["results"]["token"] == token


def test_killing_the_operator_at_random_loses_and_duplicates_nothing(core, jobs, make_plugin, store):
    good, bad = make_plugin(GOOD), make_plugin(BAD)
    expected = {f"chaos-{i}": ("Succeeded" if i % 3 else "Failed") for i in range(JOBS)}
    for name, phase in expected.items():
        jobs.create(name, good if phase == "Succeeded" else bad)
    killer = Killer(core)
    killer.start()
    seen: dict[str, list[str]] = {name: [] for name in expected}  # phases in the order observed
    ended: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 240 + 60 * JOBS
    try:
        while len(ended) < len(expected) and time.monotonic() < deadline:
            for body in jobs.custom.list_namespaced_custom_object(
                "kubecircus.io", "v1alpha1", jobs.ns, "pluginjobs"
            )["items"]:
                name, status = body["metadata"]["name"], body.get("status") or {}
                phase = status.get("phase")
                if name in seen and phase and (not seen[name] or seen[name][-1] != phase):
                    seen[name].append(phase)
                if phase in TERMINAL and name not in ended:
                    ended[name] = status
                    # checked now: the history TTL deletes a finished job and its outputs later
                    runs = _log_runs(store, status)
                    assert len(runs) == 1, (name, runs)
                    if phase == "Succeeded":
                        _check_outputs(store, status, runs[0])
                elif name in ended:  # an ended job must stay as it ended
                    assert status.get("completionTime") == ended[name]["completionTime"], (name, status)
            assert killer.error is None, killer.error
            time.sleep(0.5)
    finally:
        killer.stop.set()
        killer.join(timeout=180)
        wait_operator_ready(core, "")  # leave a working operator to the tests after this one
    log.warning("%d jobs, %d operator kills", len(expected), killer.kills)  # shown with -rP
    assert set(ended) == set(expected), f"unfinished after {killer.kills} kills: {set(expected) - set(ended)}"
    assert killer.kills >= 2, "the operator was never killed while jobs ran: the test proved nothing"
    for name, phase in expected.items():
        status = ended[name]
        assert [p for p in seen[name] if p in TERMINAL] == [phase], (name, seen[name])
        assert status.get("attempt", 0) == 0, (name, status)  # an operator crash is no job's retry
        assert launches(core, jobs.ns, jobs.child(name, "run")) == 1, name
        if phase == "Failed":
            assert (status["reason"], status.get("exitCode")) == ("ExitCode", 3), (name, status)
        else:
            assert status["reason"] == "Completed", (name, status)
