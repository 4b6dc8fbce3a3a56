"""Fixtures for the cluster tests: API clients and a real MinIO server on the node."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from kubetest import NODE_IP, api_client
from miniotest import MinioServer


@pytest.fixture(scope="session")
def k8s() -> client.ApiClient:
    return api_client()


@pytest.fixture(scope="session")
def core(k8s) -> client.CoreV1Api:
    return client.CoreV1Api(k8s)


@pytest.fixture(scope="session")
def minio_server(tmp_path_factory) -> Iterator[tuple[str, int]]:
    """A real MinIO server listening on the node's address (pods reach it like an object store)."""
    server = MinioServer(tmp_path_factory.mktemp("minio"), host=NODE_IP)
    server.start()
    yield NODE_IP, server.port
    server.stop()
