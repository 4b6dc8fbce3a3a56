"""Fixtures for end-to-end tests: the operator installed by the chart (`make deploy`) on the
local cluster, talked to through the API server as a user would."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from e2ekit import GROUP, SYSTEM, TOOLBOX, VERSION, Jobs
from kubetest import api_client, namespace


@pytest.fixture(scope="session")
def k8s() -> client.ApiClient:
    api = api_client()
    deployment = client.AppsV1Api(api).read_namespaced_deployment("kubecircus-operator", SYSTEM)
    assert (deployment.status.ready_replicas or 0) >= 1, "the operator is not running: run `make deploy`"
    return api


@pytest.fixture(scope="session")
def core(k8s) -> client.CoreV1Api:
    return client.CoreV1Api(k8s)


@pytest.fixture(scope="session")
def custom(k8s) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(k8s)


@pytest.fixture
def ns(core) -> Iterator[str]:
    with namespace(core, "e2e") as name:
        yield name


@pytest.fixture
def make_plugin(custom) -> Iterator[Callable[..., str]]:
    """Register a Plugin running the toolbox with a shell script; deleted after the test."""
    names: list[str] = []

    def make(script: str, **spec: Any) -> str:
        name = f"p-{uuid.uuid4().hex[:6]}"
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Plugin",
            "metadata": {"name": name},
            "spec": {
                "image": TOOLBOX,
                "version": "1.0.0",
                "command": ["sh", "-c", script],
                "timeoutSeconds": 120,
                **spec,
            },
        }
        custom.create_cluster_custom_object(GROUP, VERSION, "plugins", body)
        names.append(name)
        return name

    yield make
    for name in names:
        custom.delete_cluster_custom_object(GROUP, VERSION, "plugins", name)


@pytest.fixture
def jobs(custom, ns) -> Jobs:
    return Jobs(custom, ns)
