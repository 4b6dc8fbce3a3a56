"""Children's names: a name taken by someone else's object is never used, and the longest job
name the API server takes still runs (issue 8, item 4)."""

from __future__ import annotations

import time

from kubecircus.operator.builders import JOB_UID

from e2ekit import launches

RESULTS = "echo '{\"n\": 1}' > /circus/out/results.json"


def test_a_workspace_name_taken_by_another_claim_fails_the_job_and_leaves_the_claim_alone(
    core, jobs, make_plugin
):
    jobs.create("hijack", make_plugin(RESULTS), suspend=True)
    uid = jobs.get("hijack")["metadata"]["uid"]
    name = jobs.child("hijack", "ws")
    # someone's claim under the job's workspace name, even labelled to look like the job's
    claim = core.create_namespaced_persistent_volume_claim(
        jobs.ns,
        {
            "metadata": {
                "name": name,
                "labels": {JOB_UID: uid, "app.kubernetes.io/managed-by": "kubecircus"},
            },
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}},
        },
    )
    jobs.patch("hijack", {"spec": {"suspend": False}})
    status = jobs.wait("hijack", {"Succeeded", "Failed"}, timeout=120)
    assert (status["phase"], status["reason"]) == ("Failed", "NameConflict"), status
    assert name in status["message"] and "does not belong to this job" in status["message"]
    time.sleep(2)  # the cleanup after a failure has had its round
    after = core.read_namespaced_persistent_volume_claim(name, jobs.ns)
    assert after.metadata.uid == claim.metadata.uid and after.metadata.deletion_timestamp is None
    assert launches(core, jobs.ns, jobs.child("hijack", "stage")) == 0  # nothing mounted it
    assert not core.list_namespaced_pod(jobs.ns, label_selector=f"{JOB_UID}={uid}").items


def test_the_longest_job_name_still_runs(core, jobs, make_plugin):
    longest = ("segment." * 32)[:252] + "z"
    assert len(longest) == 253
    jobs.create(longest, make_plugin(RESULTS))
    status = jobs.wait(longest, {"Succeeded", "Failed"}, timeout=180)
    assert status["phase"] == "Succeeded", status
    assert status["outputs"]["results"] == {"n": 1}
    assert launches(core, jobs.ns, jobs.child(longest, "run")) == 1


def test_a_job_deleted_with_cascade_orphan_still_takes_its_children_with_it(
    core, k8s, custom, jobs, make_plugin
):
    """`kubectl delete --cascade=orphan` strips the children's ownerReferences; the plug-in pod
    with patient data mounted, the workspace and the policy must go all the same."""
    from kubernetes import client

    from e2ekit import GROUP, VERSION

    jobs.create("orphaned", make_plugin("sleep 300"))
    jobs.wait("orphaned", {"Running"})
    uid = jobs.get("orphaned")["metadata"]["uid"]
    selector = f"{JOB_UID}={uid}"
    deadline = time.monotonic() + 60
    while not core.list_namespaced_pod(jobs.ns, label_selector=f"{selector},kubecircus.io/role=run").items:
        assert time.monotonic() < deadline, "the plug-in pod never appeared"
        time.sleep(0.3)
    custom.delete_namespaced_custom_object(
        GROUP, VERSION, jobs.ns, "pluginjobs", "orphaned", propagation_policy="Orphan"
    )
    networking = client.NetworkingV1Api(k8s)
    deadline = time.monotonic() + 90
    while True:
        left = [
            *[p.metadata.name for p in core.list_namespaced_pod(jobs.ns, label_selector=selector).items],
            *[
                c.metadata.name
                for c in core.list_namespaced_persistent_volume_claim(jobs.ns, label_selector=selector).items
            ],
            *[
                p.metadata.name
                for p in networking.list_namespaced_network_policy(jobs.ns, label_selector=selector).items
            ],
        ]
        if not left:
            break
        assert time.monotonic() < deadline, f"left behind after the job went: {left}"
        time.sleep(1)
