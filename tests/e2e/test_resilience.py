"""The object store going away and the operator being killed: jobs are delayed, never lost,
never duplicated."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client

from e2ekit import SYSTEM, operator_pod, wait_operator_ready

OUTAGE_SECONDS = 30


def _scale_minio(k8s, replicas: int) -> None:
    client.AppsV1Api(k8s).patch_namespaced_deployment_scale(
        "kubecircus-minio", SYSTEM, {"spec": {"replicas": replicas}}
    )


def _wait_minio(core, running: bool, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(SYSTEM, label_selector="app.kubernetes.io/component=minio").items
        ready = [
            p
            for p in pods
            if not p.metadata.deletion_timestamp
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        ]
        if bool(ready) if running else not pods:
            return
        time.sleep(0.5)
    raise AssertionError(f"MinIO did not {'come back' if running else 'stop'} within {timeout} s")


@pytest.fixture
def minio(k8s, core):
    """Take the bundled MinIO away and bring it back (always back after the test)."""

    class Switch:
        def down(self) -> None:
            _scale_minio(k8s, 0)
            _wait_minio(core, running=False)

        def up(self) -> None:
            _scale_minio(k8s, 1)
            _wait_minio(core, running=True)

    yield Switch()
    _scale_minio(k8s, 1)
    _wait_minio(core, running=True)


MANY_OUTPUTS = (
    "echo run-$(date +%s%N); i=0; while [ $i -lt 300 ]; do "
    "dd if=/dev/urandom of=/circus/out/part-$i.bin bs=64k count=4 2>/dev/null; i=$((i+1)); done; "
    "echo '{\"results\": {}}' > /circus/out/results.json"
)


def _check_one_complete_run(store, status, files: int) -> None:
    assert status["phase"] == "Succeeded", status
    log = store.get_object(bucket_name="kubecircus", object_name=status["logRef"]["key"]).read()
    assert log.count(b"run-") == 1  # the plug-in ran once
    outputs = status["outputs"]
    manifest = json.loads(store.get_object(bucket_name="kubecircus", object_name=outputs["manifest"]).read())
    keys = {
        o.object_name
        for o in store.list_objects(
            bucket_name="kubecircus", prefix=outputs["prefix"] + "out/", recursive=True
        )
    }
    assert {outputs["prefix"] + "out/" + o["name"] for o in manifest["outputs"]} == keys
    assert len(keys) == files == outputs["fileCount"]


def test_a_store_outage_during_staging_delays_the_job(jobs, make_plugin, store, minio):
    plugin = make_plugin("echo run-$(date +%s%N); echo '{\"results\": {}}' > /circus/out/results.json")
    minio.down()
    jobs.create("patient", plugin)
    jobs.wait("patient", {"Staging"})
    time.sleep(OUTAGE_SECONDS)
    assert jobs.status("patient")["phase"] == "Staging"  # waiting, not failed
    minio.up()
    _check_one_complete_run(store, jobs.wait("patient", {"Succeeded", "Failed"}, timeout=300), 1)


def test_a_store_outage_during_collecting_delays_the_job(jobs, make_plugin, store, minio):
    jobs.create("patient", make_plugin(MANY_OUTPUTS))
    jobs.wait("patient", {"Collecting"}, timeout=240)
    minio.down()
    time.sleep(OUTAGE_SECONDS)
    assert jobs.status("patient")["phase"] == "Collecting"
    minio.up()
    _check_one_complete_run(store, jobs.wait("patient", {"Succeeded", "Failed"}, timeout=300), 301)


def test_sigkill_during_collecting_still_ends_with_one_run_and_complete_outputs(
    core, jobs, make_plugin, store
):
    jobs.create("survivor", make_plugin(MANY_OUTPUTS))
    jobs.wait("survivor", {"Collecting"}, timeout=240)
    victim = operator_pod(core).metadata.name
    core.delete_namespaced_pod(victim, SYSTEM, grace_period_seconds=0)  # SIGKILL
    wait_operator_ready(core, victim)
    status = jobs.wait("survivor", {"Succeeded", "Failed"}, timeout=300)
    _check_one_complete_run(store, status, 301)
    assert status["attempt"] == 0
