"""Fixtures for the cluster tests: API clients and a real MinIO server on the node."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request

import pytest
from kubernetes import client

from kubetest import CACHE_BIN, NODE_IP, api_client

MINIO = CACHE_BIN / "minio"


@pytest.fixture(scope="session")
def k8s() -> client.ApiClient:
    return api_client()


@pytest.fixture(scope="session")
def core(k8s) -> client.CoreV1Api:
    return client.CoreV1Api(k8s)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def minio_server(tmp_path_factory) -> tuple[str, int]:
    """A real MinIO server listening on the node's address (pods reach it like an object store)."""
    assert MINIO.exists(), f"{MINIO} is missing: run `make cluster-up` (it builds MinIO from its Go module)"
    port = _free_port(NODE_IP)
    data = tmp_path_factory.mktemp("minio")
    env = {
        **os.environ,
        "MINIO_ROOT_USER": "kubecircus",
        "MINIO_ROOT_PASSWORD": "kubecircus-test-secret",
        "MINIO_BROWSER": "off",
        "MINIO_UPDATE": "off",
    }
    process = subprocess.Popen(
        [str(MINIO), "server", "--quiet", "--address", f"{NODE_IP}:{port}", str(data)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://{NODE_IP}:{port}/minio/health/live"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    deadline = time.monotonic() + 60
    while True:
        try:
            with direct.open(url, timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise AssertionError("MinIO did not become live within 60 s") from None
            time.sleep(0.3)
    yield NODE_IP, port
    process.terminate()
    process.wait(10)
