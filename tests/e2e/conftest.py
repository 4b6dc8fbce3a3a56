"""Fixtures for end-to-end tests: the operator installed by the chart (`make deploy`) on the
local cluster, talked to through the API server as a user would."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from dicomfactory import SeriesSpec, write_series
from e2ekit import GROUP, INPUTS, SYSTEM, TOOLBOX, VERSION, Jobs, bundled_store
from kubetest import api_client, namespace
from storetest import upload_folder


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


@pytest.fixture(scope="session")
def store(core):
    """The bundled MinIO, as its admin (the tests upload inputs and read outputs with it)."""
    return bundled_store(core)


@pytest.fixture(scope="session")
def sample_series(tmp_path_factory) -> Path:
    """A small CT series: 6 slices of 16x16."""
    folder = tmp_path_factory.mktemp("sample") / "s1"
    write_series(SeriesSpec(rows=16, columns=16, slices=6), folder)
    return folder


@pytest.fixture
def ns(core, store, sample_series) -> Iterator[str]:
    """A fresh namespace whose sample series is uploaded under dicom/<namespace>/s1/."""
    with namespace(core, "e2e") as name:
        upload_folder(store, sample_series, INPUTS, f"{name}/s1/")
        yield name


@pytest.fixture
def register_plugin(custom) -> Iterator[Callable[..., str]]:
    """Register a Plugin with ``spec`` under a unique name (``prefix-xxxxxx``); deleted after the test."""
    names: list[str] = []

    def register(prefix: str = "p", **spec: Any) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Plugin",
            "metadata": {"name": name},
            "spec": spec,
        }
        custom.create_cluster_custom_object(GROUP, VERSION, "plugins", body)
        names.append(name)
        return name

    yield register
    for name in names:
        try:
            custom.delete_cluster_custom_object(GROUP, VERSION, "plugins", name)
        except client.exceptions.ApiException as exc:
            if exc.status != 404:  # a test may have deleted it itself
                raise


@pytest.fixture
def make_plugin(register_plugin) -> Callable[..., str]:
    """A Plugin running the toolbox with a shell script."""

    def make(script: str, **spec: Any) -> str:
        return register_plugin(
            image=TOOLBOX, version="1.0.0", command=["sh", "-c", script], **{"timeoutSeconds": 120, **spec}
        )

    return make


@pytest.fixture
def jobs(custom, ns) -> Jobs:
    return Jobs(custom, ns)
