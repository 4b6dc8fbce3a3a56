"""The chart's admission guard on the operator's own identity, judged by the real API server:
everything the operator builds passes; what a compromised operator would try is refused; other
identities are not affected."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client, utils
from kubernetes.client.rest import ApiException

from kubecircus.operator import builders, pods
from kubecircus.operator.config import OperatorConfig

from jobbuilders import JobBuilder, plugin
from kubetest import CACHE_BIN, api_client, namespace

CHART = Path(__file__).resolve().parents[2] / "helm" / "kubecircus"


def _guard(release: str, release_ns: str) -> list[dict]:
    helm = CACHE_BIN / "helm"
    assert helm.exists(), f"{helm} is missing: `make cluster-up` builds it"
    args = ["template", release, str(CHART), "-n", release_ns, "--kube-version", "1.34.0"]
    args += ["--set", "objectStore.endpoint=store.example:9000", "-s", "templates/operator-guard.yaml"]
    text = subprocess.run(
        [str(helm), *args], capture_output=True, text=True, encoding="utf-8", check=True
    ).stdout
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.fixture
def guarded(core):
    """A scratch release's guard, and a job namespace where its operator identity may create."""
    k8s = api_client()
    release = f"kubecircus-{uuid.uuid4().hex[:6]}"  # names: <release>-operator, ...
    with namespace(core, "guardrel") as release_ns, namespace(core, "guarded") as ns:
        docs = _guard(release, release_ns)
        assert [d["kind"] for d in docs] == ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
        rbac = client.RbacAuthorizationV1Api(k8s)
        operator = f"system:serviceaccount:{release_ns}:{release}-operator"
        rbac.create_namespaced_role_binding(
            ns,
            {
                "metadata": {"name": "operator-may-create"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
                "subjects": [{"kind": "User", "name": operator, "apiGroup": "rbac.authorization.k8s.io"}],
            },
        )
        try:
            for doc in docs:
                utils.create_from_dict(k8s, doc)
            as_operator = api_client()
            as_operator.set_default_header("Impersonate-User", operator)
            yield ns, as_operator
        finally:
            admission = client.AdmissionregistrationV1Api(k8s)
            for delete in (
                admission.delete_validating_admission_policy_binding,
                admission.delete_validating_admission_policy,
            ):
                try:
                    delete(f"{release}-operator-guard")
                except ApiException as exc:
                    if exc.status != 404:
                        raise


def _refusal(create, *args) -> str | None:
    try:
        create(*args, dry_run="All")
    except ApiException as exc:
        assert exc.status in (400, 403, 422), exc
        return exc.body
    return None


def test_the_operator_identity_may_create_what_it_builds_and_nothing_wider(guarded):
    ns, as_operator = guarded
    core, networking = client.CoreV1Api(as_operator), client.NetworkingV1Api(as_operator)
    config = OperatorConfig(identity="t", store_endpoint="store:9000")
    job = JobBuilder("guarded", namespace=ns).phase("Running").build()
    plug = plugin()
    privileged = pods.run_pod(job, plug, config, 60)
    privileged["metadata"]["name"] = "privileged"
    privileged["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    deadline = time.monotonic() + 30  # the API server loads admission policies asynchronously
    while _refusal(core.create_namespaced_pod, ns, privileged) is None:
        assert time.monotonic() < deadline, "the guard never took effect"
        time.sleep(0.5)

    # everything the operator builds passes
    for pod in (
        pods.stage_pod(job, plug, config),
        pods.run_pod(job, plug, config, 60),
        pods.collect_pod(job, plug, config),
    ):
        assert _refusal(core.create_namespaced_pod, ns, pod) is None, pod["metadata"]["name"]
    assert _refusal(networking.create_namespaced_network_policy, ns, builders.isolation_policy(job)) is None
    assert _refusal(networking.create_namespaced_network_policy, ns, builders.namespace_policy(ns)) is None
    secret = {
        "metadata": {"name": builders.secret_name(job, "stage")},
        "type": "Opaque",
        "stringData": {"k": "v"},
    }
    assert _refusal(core.create_namespaced_secret, ns, secret) is None

    # what a compromised operator would try
    assert "never privileged" in _refusal(core.create_namespaced_pod, ns, privileged)
    host = pods.stage_pod(job, plug, config)
    host["spec"]["hostNetwork"] = True
    assert "host namespaces" in _refusal(core.create_namespaced_pod, ns, host)
    token = pods.stage_pod(job, plug, config)
    token["spec"]["automountServiceAccountToken"] = True
    assert "token" in _refusal(core.create_namespaced_pod, ns, token)
    stealing = pods.stage_pod(job, plug, config)
    stealing["spec"]["volumes"].append({"name": "loot", "secret": {"secretName": "someone-elses"}})
    assert "step store Secrets" in _refusal(core.create_namespaced_pod, ns, stealing)
    unquarantined = pods.run_pod(job, plug, config, 60)
    unquarantined["metadata"]["annotations"][pods.NO_QUARANTINE] = "true"
    assert "quarantine" in _refusal(core.create_namespaced_pod, ns, unquarantined)
    minted = {
        "metadata": {"name": "x-store", "annotations": {"kubernetes.io/service-account.name": "default"}},
        "type": "kubernetes.io/service-account-token",
    }
    assert "Opaque step store Secrets" in _refusal(core.create_namespaced_secret, ns, minted)
    opening = builders.isolation_policy(job)
    opening["spec"]["egress"] = [{}]  # allow everything out
    assert "deny-all" in _refusal(networking.create_namespaced_network_policy, ns, opening)

    # other identities are not the guard's business (Pod Security and RBAC judge them)
    assert _refusal(client.CoreV1Api(api_client()).create_namespaced_pod, ns, privileged) is None
