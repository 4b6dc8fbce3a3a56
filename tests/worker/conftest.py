"""A real MinIO server for the worker and object-store tests, set up the way the chart's set-up
Job sets up the bundled one (buckets, the operator's user and policy), and STS credentials
minted for each step the way the operator mints them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from minio import Minio

from kubecircus.objectstore import admin, sts
from kubecircus.objectstore.client import Credentials, StoreConfig, connect

from miniotest import ROOT_PASSWORD, ROOT_USER, MinioServer
from storetest import BUCKET, INPUTS, OPERATOR


@pytest.fixture(scope="session")
def minio(tmp_path_factory) -> Iterator[MinioServer]:
    server = MinioServer(tmp_path_factory.mktemp("minio-data"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def store_config(minio) -> StoreConfig:
    config = StoreConfig(endpoint=minio.endpoint, bucket=BUCKET)
    admin.setup(config, Credentials(ROOT_USER, ROOT_PASSWORD), OPERATOR, [INPUTS], wait=30)
    return config


@pytest.fixture(scope="session")
def root(store_config) -> Minio:
    return connect(store_config, Credentials(ROOT_USER, ROOT_PASSWORD))


@pytest.fixture(scope="session")
def operator_store(store_config) -> Minio:
    return connect(store_config, OPERATOR)


@pytest.fixture(scope="session")
def minted(store_config) -> Callable[[str], Credentials]:
    """Credentials minted for ``policy``, as the operator mints them for a step pod."""

    def make(policy: str) -> Credentials:
        got = sts.mint(store_config, OPERATOR, policy, 900, "test")
        return Credentials(got.access_key, got.secret_key, got.session_token)

    return make


@pytest.fixture(scope="session")
def mint(store_config, minted) -> Callable[[str], Minio]:
    """A client holding credentials minted for ``policy``."""
    return lambda policy: connect(store_config, minted(policy))
