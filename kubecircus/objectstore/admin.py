"""``kubecircus store-setup``: buckets and the operator's own user, once per install.

Run by the chart's set-up Job in the release namespace, the only place the store's admin keys are
mounted. It creates the kubecircus bucket and the input buckets, and a store user for the
operator with a policy limited to them (``policy.operator_policy``); the operator never sees the
admin keys. Users and policies are MinIO's admin API (the one MinIO-specific part of kubecircus):
with another S3-compatible store, create the same with its own tools (docs/operator.md).
Every call is idempotent, so the Job runs again on each upgrade.
"""

from __future__ import annotations

import json
import logging
import os
import sys

from minio import Minio
from minio.credentials import StaticProvider
from minio.minioadmin import MinioAdmin

from .client import Credentials, StoreConfig, connect, retrying
from .policy import operator_policy

log = logging.getLogger(__name__)
OPERATOR_POLICY = "kubecircus-operator"


def ensure_buckets(store: Minio, buckets: list[str]) -> None:
    for bucket in buckets:
        if not store.bucket_exists(bucket_name=bucket):
            store.make_bucket(bucket_name=bucket)
            log.info("created bucket %s", bucket)


def ensure_operator_user(
    admin: MinioAdmin, operator: Credentials, bucket: str, input_buckets: list[str]
) -> None:
    admin.policy_add(OPERATOR_POLICY, policy=json.loads(operator_policy(bucket, input_buckets)))
    admin.user_add(operator.access_key, operator.secret_key)
    try:
        admin.attach_policy([OPERATOR_POLICY], user=operator.access_key)
    except Exception as exc:  # attaching twice is refused: "already in effect"
        if "already" not in str(exc).lower():
            raise
    log.info("store user %s has policy %s", operator.access_key, OPERATOR_POLICY)


def setup(
    config: StoreConfig, root: Credentials, operator: Credentials, input_buckets: list[str], wait: float
) -> None:
    store = connect(config, root, timeout=10)
    retrying(store.list_buckets, wait, "waiting for the object store")
    ensure_buckets(store, [config.bucket, *input_buckets])
    admin = MinioAdmin(
        endpoint=config.endpoint,
        credentials=StaticProvider(root.access_key, root.secret_key),
        region=config.region,
        secure=config.secure,
        http_client=config.http(timeout=30),
    )
    ensure_operator_user(admin, operator, config.bucket, input_buckets)


def main(wait: float = 120) -> int:
    logging.basicConfig(level=logging.INFO, format="store-setup: %(message)s", stream=sys.stdout)
    config = StoreConfig.from_env()
    root = Credentials.from_dir(os.environ.get("KUBECIRCUS_ADMIN_CREDENTIALS", "/var/run/kubecircus/admin"))
    operator = Credentials.from_dir(os.environ.get("KUBECIRCUS_CREDENTIALS", "/var/run/kubecircus/store"))
    inputs = [b for b in os.environ.get("KUBECIRCUS_INPUT_BUCKETS", "dicom").split(",") if b]
    try:
        setup(config, root, operator, inputs, wait)
    except Exception as exc:
        log.error("store set-up failed: %s", exc)
        return 1
    log.info("buckets %s ready", ", ".join([config.bucket, *inputs]))
    return 0
