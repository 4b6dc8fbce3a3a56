"""Children the API server refuses: the job fails with the API server's own words at once,
instead of retrying a pod that never existed."""

from __future__ import annotations

import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kubetest import toolbox_pod


@pytest.fixture
def no_staging_in(k8s, ns):
    """An admission policy (CEL, no webhook) that refuses this namespace's stage pods."""
    api = client.AdmissionregistrationV1Api(k8s)
    name = f"e2e-no-staging-{ns}"
    api.create_validating_admission_policy(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": "!has(object.metadata.labels) || "
                        "object.metadata.labels[?'kubecircus.io/role'].orValue('') != 'stage'",
                        "message": "this namespace runs no staging pods (e2e admission policy)",
                    }
                ],
            },
        }
    )
    api.create_validating_admission_policy_binding(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}},
            },
        }
    )
    core = client.CoreV1Api(k8s)
    probe = toolbox_pod("probe", "true", {"kubecircus.io/role": "stage"})
    deadline = time.monotonic() + 30
    while True:  # the API server loads admission policies asynchronously: wait until it refuses
        try:
            core.create_namespaced_pod(ns, probe, dry_run="All")
        except ApiException as exc:
            if exc.status in (400, 403, 422):
                break
            raise
        assert time.monotonic() < deadline, "the admission policy never took effect"
        time.sleep(0.5)
    yield
    api.delete_validating_admission_policy_binding(name)
    api.delete_validating_admission_policy(name)


def test_a_pod_refused_by_admission_fails_the_job_with_the_reason(no_staging_in, core, jobs, make_plugin):
    jobs.create("refused", make_plugin("echo '{}' > /circus/out/results.json"))
    status = jobs.wait("refused", {"Succeeded", "Failed"}, timeout=120)
    assert (status["phase"], status["reason"]) == ("Failed", "CreateRefused"), status
    assert "this namespace runs no staging pods" in status["message"]
    assert status["attempt"] == 0  # never mistaken for a lost pod
    secrets = [s.metadata.name for s in core.list_namespaced_secret(jobs.ns).items]
    assert jobs.child("refused", "stage-store") not in secrets  # the minted credentials went with the job


def test_a_plugin_asking_for_gpus_the_cluster_lacks_fails_unschedulable(jobs, make_plugin):
    """make test deploys with jobs.pendingDeadlineSeconds=30 (default 600)."""
    jobs.create("gpu", make_plugin("echo '{}' > /circus/out/results.json", gpus=1))
    status = jobs.wait("gpu", {"Succeeded", "Failed"}, timeout=180)
    assert (status["phase"], status["reason"]) == ("Failed", "Unschedulable"), status
    assert "nvidia.com/gpu" in status["message"] and status.get("exitCode") is None


def test_a_runtime_class_the_cluster_lacks_is_refused_with_the_api_servers_words(jobs, make_plugin):
    jobs.create(
        "sandboxed", make_plugin("echo '{}' > /circus/out/results.json", runtimeClassName="no-such-sandbox")
    )
    status = jobs.wait("sandboxed", {"Succeeded", "Failed"}, timeout=120)
    assert status["phase"] == "Failed" and "no-such-sandbox" in status["message"], status


def test_a_plugin_filling_its_disk_is_evicted_and_fails_for_it(jobs, make_plugin):
    # the kubelet measures disk use now and then (tens of seconds apart): wait long enough for it
    fill = "dd if=/dev/zero of=/tmp/fill bs=1M count=300 2>&1; sleep 200; echo '{}' >/circus/out/results.json"
    plugin = make_plugin(fill, resources={"limits": {"ephemeral-storage": "64Mi"}}, timeoutSeconds=300)
    jobs.create("filler", plugin)
    status = jobs.wait("filler", {"Succeeded", "Failed"}, timeout=330)
    assert (status["phase"], status["reason"]) == ("Failed", "StorageLimitExceeded"), status
    assert "64Mi" in status["message"] and status["attempt"] == 0


def test_a_job_runs_only_where_its_plugin_may_and_waits_where_no_node_fits(core, jobs, make_plugin):
    node = core.list_node().items[0].metadata.name
    here = make_plugin(
        "echo '{}' > /circus/out/results.json",
        nodeSelector={"kubernetes.io/hostname": node},
        tolerations=[{"key": "example.org/imaging", "operator": "Exists", "effect": "NoSchedule"}],
    )
    jobs.create("placed", here)
    assert jobs.wait("placed", {"Succeeded", "Failed"}, timeout=180)["phase"] == "Succeeded"
    nowhere = make_plugin("echo '{}' > /circus/out/results.json", nodeSelector={"example.org/absent": "yes"})
    jobs.create("unplaced", nowhere)
    stage = jobs.child("unplaced", "stage")
    deadline = time.monotonic() + 60
    while True:  # the stage pod, not only the plug-in's, waits for a node the plug-in could use
        try:
            pod = core.read_namespaced_pod(stage, jobs.ns)
        except ApiException as exc:
            assert exc.status == 404
            pod = None
        conditions = {c.type: c for c in (pod.status.conditions or [])} if pod else {}
        if "PodScheduled" in conditions and conditions["PodScheduled"].status == "False":
            break
        assert time.monotonic() < deadline, "the stage pod was never found unschedulable"
        time.sleep(0.5)
    assert pod.spec.node_selector == {"example.org/absent": "yes"}
    jobs.patch("unplaced", {"spec": {"cancel": True}})
    assert jobs.wait("unplaced", {"Cancelled"})["phase"] == "Cancelled"
