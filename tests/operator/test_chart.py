"""The Helm chart: lints clean, ships the generated CRDs, grants no more than it says."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from kubecircus.operator.crdgen import render_all

from kubetest import CACHE_BIN

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "kubecircus"
HELM = CACHE_BIN / "helm"


def helm(*args: str) -> str:
    assert HELM.exists(), f"{HELM} is missing: `make cluster-up` builds helm from its Go module"
    done = subprocess.run([str(HELM), *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_generated_crds_are_current_in_both_places():
    for name, text in render_all().items():
        assert (ROOT / "crds" / name).read_text() == text, f"crds/{name} is stale: run `make crds`"
        assert (CHART / "crds" / name).read_text() == text, f"chart crds/{name} is stale: run `make crds`"


@pytest.mark.parametrize("values", [[], ["-f", str(CHART / "values-local.yaml")]])
def test_helm_lint_is_clean(values):
    out = helm("lint", "--strict", str(CHART), *values)
    assert "0 chart(s) failed" in out


def _render(*args: str) -> list[dict]:
    text = helm(
        "template", "kubecircus", str(CHART), "-n", "kubecircus-system", "--kube-version", "1.34.0", *args
    )
    return [d for d in yaml.safe_load_all(text) if d]


def test_rbac_is_least_privilege():
    docs = _render()
    (cluster_role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    for rule in cluster_role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
        assert not {"update", "patch"} & set(rule["verbs"]) or rule["resources"] == ["pluginjobs/status"], (
            rule
        )
    granted = {(r, v) for rule in cluster_role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    assert ("secrets", "get") not in granted and ("pluginjobs", "update") not in granted
    (role,) = [d for d in docs if d["kind"] == "Role"]
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}
    ]


def test_values_are_validated_by_the_schema():
    done = subprocess.run(
        [
            str(HELM),
            "template",
            "x",
            str(CHART),
            "--kube-version",
            "1.34.0",
            "--set",
            "queue.maxConcurrentJobs=0",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0 and "maxConcurrentJobs" in done.stderr


def test_minio_is_optional_and_its_keys_live_in_the_named_secret():
    assert not [d for d in _render() if d["metadata"]["name"] == "kubecircus-minio"]
    docs = _render("-f", str(CHART / "values-local.yaml"))
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    assert secret["metadata"]["name"] == "kubecircus-objectstore" and set(secret["data"]) == {
        "accessKey",
        "secretKey",
    }
    (service,) = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "kubecircus-minio"]
    assert service["spec"]["ports"][0]["port"] == 9000


def test_operator_pod_is_locked_down():
    (deployment,) = [d for d in _render() if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    env = {e["name"] for e in container["env"]}
    assert {"KUBECIRCUS_MAX_CONCURRENT_JOBS", "KUBECIRCUS_HISTORY_TTL_SECONDS", "POD_NAME"} <= env
