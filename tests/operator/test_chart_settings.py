"""The chart's settings: one source (config.py) for the operator's environment, names derived
from the release, security contexts from values."""

from __future__ import annotations

from dataclasses import fields

import pytest
import yaml

from kubecircus.operator import chartenv
from kubecircus.operator.config import OperatorConfig

from .test_chart import CHART, STORE, _render

pytestmark = pytest.mark.tools


def _values_default(key: str):
    node = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    for part in key.split("."):
        assert isinstance(node, dict) and part in node, f"values.yaml has no {key}"
        node = node[part]
    return node


def _operator(docs: list[dict]) -> dict:
    (deployment,) = [d for d in docs if d["kind"] == "Deployment" and "operator" in d["metadata"]["name"]]
    return deployment


def _env(docs: list[dict]) -> dict[str, str]:
    (container,) = _operator(docs)["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_every_operator_setting_of_the_chart_reaches_the_operator_with_the_values_default():
    env = _env(_render(*STORE))
    config = OperatorConfig.from_env({k: v for k, v in env.items() if v is not None})
    keyed = [(name, chart) for name, chart, _ in chartenv.chart_settings() if not chart.startswith("=")]
    assert len(keyed) > 30
    for name, key in keyed:
        default = _values_default(key)
        assert f"KUBECIRCUS_{name.upper()}" in env, name
        assert getattr(config, name) == type(getattr(config, name))(default), (name, key, env)


def test_the_deployment_sets_no_operator_variable_that_config_py_does_not_know():
    known = {f"KUBECIRCUS_{f.name.upper()}" for f in fields(OperatorConfig)} | {"KUBECIRCUS_LOG_LEVEL"}
    env = _env(_render(*STORE))
    assert {name for name in env if name.startswith("KUBECIRCUS_")} <= known


def test_large_byte_counts_are_written_as_integers():
    env = _env(_render(*STORE, "--set", "cache.maxBytes=107374182400"))
    assert env["KUBECIRCUS_CACHE_MAX_BYTES"] == "107374182400"


def test_names_follow_the_release_and_the_service_account_is_bound_where_it_is_used():
    docs = _render(*STORE, "--set", "minio.enabled=true", release="team")
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Deployment", "team-kubecircus-operator") in names
    assert ("Deployment", "team-kubecircus-minio") in names
    assert ("ServiceAccount", "team-kubecircus-operator") in names
    pod = _operator(docs)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "team-kubecircus-operator"
    env = _env(docs)
    assert env["KUBECIRCUS_LEASE_NAME"] == "team-kubecircus-operator"
    assert env["KUBECIRCUS_STORE_ENDPOINT"] == "store.example:9000"
    subjects = [s for d in docs if d["kind"].endswith("Binding") for s in d.get("subjects", [])]
    service_accounts = {s["name"] for s in subjects if s["kind"] == "ServiceAccount"}
    assert service_accounts == {"team-kubecircus-operator"}


def test_an_existing_service_account_can_be_used_and_must_be_named():
    docs = _render(
        *STORE, "--set", "operator.serviceAccount.create=false", "--set", "operator.serviceAccount.name=ops"
    )
    assert not [d for d in docs if d["kind"] == "ServiceAccount"]
    assert _operator(docs)["spec"]["template"]["spec"]["serviceAccountName"] == "ops"
    with pytest.raises(AssertionError, match=r"operator\.serviceAccount\.name is required"):
        _render(*STORE, "--set", "operator.serviceAccount.create=false")


def test_security_contexts_come_from_values():
    docs = _render(*STORE, "--set", "operator.podSecurityContext.runAsUser=1234")
    pod = _operator(docs)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 1234
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize(
    "weakening",
    [
        "operator.podSecurityContext.runAsNonRoot=false",
        "operator.podSecurityContext.runAsUser=0",
        "operator.securityContext.allowPrivilegeEscalation=true",
        "operator.securityContext.readOnlyRootFilesystem=false",
        "operator.securityContext.capabilities.add={NET_ADMIN}",
        "minio.securityContext.privileged=true",
    ],
)
def test_security_contexts_cannot_be_weakened_through_values(weakening):
    with pytest.raises(AssertionError, match="values don't meet the specifications of the schema"):
        _render(*STORE, "--set", weakening)


def test_the_default_service_account_is_never_given_the_operators_rights():
    with pytest.raises(AssertionError, match="must not be"):
        _render(
            *STORE,
            "--set",
            "operator.serviceAccount.create=false",
            "--set",
            "operator.serviceAccount.name=default",
        )
