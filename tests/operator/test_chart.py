"""The Helm chart: lints clean, grants no more than it says, renders what its values say."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from kubetest import CACHE_BIN

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "kubecircus"
HELM = CACHE_BIN / "helm"
STORE = ["--set", "objectStore.endpoint=store.example:9000"]
#: helm is built by `make cluster-up`: `make test-unit` (Python only) leaves these tests out.
pytestmark = pytest.mark.tools


def helm(*args: str) -> str:
    assert HELM.exists(), f"{HELM} is missing: `make cluster-up` builds helm from its Go module"
    done = subprocess.run([str(HELM), *args], capture_output=True, text=True, encoding="utf-8", check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("values", [STORE, ["-f", str(CHART / "values-local.yaml")]])
def test_helm_lint_is_clean(values):
    out = helm("lint", "--strict", str(CHART), *values)
    assert "0 chart(s) failed" in out


def _render(*args: str, release: str = "kubecircus") -> list[dict]:
    text = helm("template", release, str(CHART), "-n", "kubecircus-system", "--kube-version", "1.34.0", *args)
    return [d for d in yaml.safe_load_all(text) if d]


def test_rbac_is_least_privilege():
    docs = _render(*STORE)
    (cluster_role,) = [
        d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "kubecircus-operator"
    ]
    for rule in cluster_role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
        assert "update" not in rule["verbs"], rule
        # patch: the status, and the finalizer that deletes a job's outputs with it
        assert "patch" not in rule["verbs"] or set(rule["resources"]) <= {
            "pluginjobs/status",
            "pluginjobs",
        }, rule
    granted = {(r, v) for rule in cluster_role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    # Secrets: only the step credentials it mints and deletes; it can read none
    assert {v for r, v in granted if r == "secrets"} == {"create", "delete"}
    (role,) = [d for d in docs if d["kind"] == "Role"]
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}
    ]


def test_pods_are_patchable_only_with_overlap_staging():
    def pod_verbs(*args: str) -> set[str]:
        docs = _render(*STORE, *args)
        (role,) = [
            d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "kubecircus-operator"
        ]
        return {v for rule in role["rules"] if rule["resources"] == ["pods"] for v in rule["verbs"]}

    assert "patch" not in pod_verbs()
    assert pod_verbs("--set", "jobs.overlapStaging=true") - pod_verbs() == {"patch"}


def test_values_are_validated_by_the_schema():
    done = subprocess.run(
        [
            str(HELM),
            "template",
            "x",
            str(CHART),
            "--kube-version",
            "1.34.0",
            *STORE,
            "--set",
            "queue.maxConcurrentJobs=0",
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )
    assert done.returncode != 0 and "maxConcurrentJobs" in done.stderr


def test_minio_is_optional_and_its_keys_live_in_the_named_secret():
    assert not [d for d in _render(*STORE) if d["metadata"]["name"] == "kubecircus-minio"]
    docs = _render("-f", str(CHART / "values-local.yaml"))
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    assert set(secrets) == {"kubecircus-objectstore", "kubecircus-store-operator"}
    assert all(set(s["data"]) == {"accessKey", "secretKey"} for s in secrets.values())
    (service,) = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "kubecircus-minio"]
    assert service["spec"]["ports"][0]["port"] == 9000


def _secret_users(docs: list[dict]) -> dict[str, set[str]]:
    """Which workload mounts or reads which Secret."""
    users: dict[str, set[str]] = {}
    for doc in docs:
        if doc["kind"] not in {"Deployment", "Job"}:
            continue
        spec = doc["spec"]["template"]["spec"]
        names = {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
        for container in spec["containers"]:
            names |= {
                e["valueFrom"]["secretKeyRef"]["name"]
                for e in container.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})
            }
        users[doc["metadata"]["name"]] = names
    return users


def test_the_store_admin_keys_reach_only_minio_and_the_setup_job():
    users = _secret_users(_render("-f", str(CHART / "values-local.yaml")))
    assert users["kubecircus-operator"] == {"kubecircus-store-operator"}
    assert users["kubecircus-store-setup"] == {"kubecircus-objectstore", "kubecircus-store-operator"}
    assert users["kubecircus-minio"] == {"kubecircus-objectstore"}


def test_an_external_store_needs_an_endpoint():
    done = subprocess.run(
        [str(HELM), "template", "x", str(CHART), "--kube-version", "1.34.0"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )
    assert done.returncode != 0 and "objectStore.endpoint is required" in done.stderr
    (deployment,) = [d for d in _render(*STORE) if d["kind"] == "Deployment"]
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (
        env["KUBECIRCUS_STORE_ENDPOINT"] == "store.example:9000"
        and env["KUBECIRCUS_INPUT_BUCKETS"] == "dicom"
    )


def test_operator_pod_is_locked_down():
    (deployment,) = [d for d in _render(*STORE) if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    env = {e["name"] for e in container["env"]}
    assert {"KUBECIRCUS_MAX_CONCURRENT_JOBS", "KUBECIRCUS_HISTORY_TTL_SECONDS", "POD_NAME"} <= env


def test_people_get_roles_to_bind_per_namespace():
    roles = {d["metadata"]["name"]: d for d in _render(*STORE) if d["kind"] == "ClusterRole"}
    submitter, viewer = roles["kubecircus-job-submitter"], roles["kubecircus-job-viewer"]
    granted = {(r, v) for rule in submitter["rules"] for r in rule["resources"] for v in rule["verbs"]}
    assert ("pluginjobs", "create") in granted
    assert not {g for g in granted if g[0] in {"pluginjobs/status", "plugins"}}  # never via a namespace
    assert {v for rule in viewer["rules"] for v in rule["verbs"]} == {"get", "list", "watch"}
    assert submitter["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert viewer["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    # Plugins are cluster-scoped: the catalogue is readable through a cluster-wide binding
    reader = roles["kubecircus-plugin-reader"]
    assert reader["rules"] == [
        {"apiGroups": ["kubecircus.io"], "resources": ["plugins"], "verbs": ["get", "list", "watch"]}
    ]
    bindings = {d["metadata"]["name"]: d for d in _render(*STORE) if d["kind"] == "ClusterRoleBinding"}
    assert bindings["kubecircus-plugin-reader"]["subjects"][0]["name"] == "system:authenticated"
    nobody = _render(*STORE, "--set", "rbac.pluginsReadableBy=null")
    assert "kubecircus-plugin-reader" not in {
        d["metadata"]["name"] for d in nobody if d["kind"] == "ClusterRoleBinding"
    }


def test_namespace_priority_caps_reach_the_operator():
    (deployment,) = [
        d
        for d in _render(
            *STORE,
            "--set",
            "queue.namespaceMaxPriority.team-b=5",
            "--set",
            "queue.namespaceMaxPriority.team-a=50",
        )
        if d["kind"] == "Deployment"
    ]
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (
        env["KUBECIRCUS_NAMESPACE_MAX_PRIORITY"] == "team-a=50,team-b=5"
        and env["KUBECIRCUS_MAX_PRIORITY"] == "100"
    )


def _bindings(docs: list[dict]) -> dict[tuple[str, str | None], str]:
    """(kind, namespace) of every binding of the operator's namespaced ClusterRole."""
    return {
        (d["kind"], d["metadata"].get("namespace")): d["roleRef"]["name"]
        for d in docs
        if d["kind"] in ("ClusterRoleBinding", "RoleBinding")
        and d["roleRef"]["name"] == "kubecircus-operator"
    }


def test_watch_namespaces_bind_the_operator_there_only():
    everywhere = _render(*STORE)
    assert set(_bindings(everywhere)) == {("ClusterRoleBinding", None)}
    scoped = _render(*STORE, "--set", "operator.watchNamespaces={radiology-a,radiology-b}")
    assert set(_bindings(scoped)) == {("RoleBinding", "radiology-a"), ("RoleBinding", "radiology-b")}
    (deployment,) = [d for d in scoped if d["kind"] == "Deployment" and "operator" in d["metadata"]["name"]]
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KUBECIRCUS_WATCH_NAMESPACES"] == "radiology-a,radiology-b"
    (cluster_wide,) = [
        d
        for d in scoped
        if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "kubecircus-operator-cluster"
    ]
    resources = {r for rule in cluster_wide["rules"] for r in rule["resources"]}
    assert resources == {"plugins", "customresourcedefinitions"}  # nothing that lives in a namespace


def test_the_operator_guard_is_on_by_default_and_bound_to_the_operator_alone():
    docs = _render(*STORE)
    (policy,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    (condition,) = policy["spec"]["matchConditions"]
    assert "system:serviceaccount:kubecircus-system:kubecircus-operator" in condition["expression"]
    assert any(d["kind"] == "ValidatingAdmissionPolicyBinding" for d in docs)
    off = _render(*STORE, "--set", "operator.admissionGuard=false")
    assert not [d for d in off if d["kind"].startswith("ValidatingAdmissionPolicy")]
