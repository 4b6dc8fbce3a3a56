"""The operator's cache sweep against a real MinIO, as the operator's own store user."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime

from kubecircus.operator.config import OperatorConfig
from kubecircus.operator.storeops import StoreOps

from storetest import BUCKET, OPERATOR


def _put(client, key: str, size: int) -> None:
    client.put_object(bucket_name=BUCKET, object_name=key, data=io.BytesIO(b"x" * size), length=size)


def test_the_sweep_keeps_the_newest_within_the_size_and_deletes_junk(operator_store, store_config, tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "accessKey").write_text(OPERATOR.access_key)
    (creds / "secretKey").write_text(OPERATOR.secret_key)
    ns = "sweep-ns"
    old, new = "1" * 64, "2" * 64
    for key in (old, new):
        _put(operator_store, f"cache/{ns}/{key}/volume.raw", 1000)
        _put(operator_store, f"cache/{ns}/{key}/complete", 10)
        time.sleep(1.1)  # last use: the marker's modification time (one-second resolution)
    _put(operator_store, f"cache/{ns}/{'3' * 64}/notes.bin", 5)  # not the layout: junk
    _put(operator_store, f"cache/{ns}/a/b/c", 5)  # written with stage credentials, never swept before
    config = OperatorConfig(
        identity="t",
        store_endpoint=store_config.endpoint,
        store_bucket=BUCKET,
        store_credentials=str(creds),
        cache_max_bytes=1500,
        cache_max_age_seconds=3600,
    )
    assert StoreOps(config).sweep_cache(datetime.now(UTC)) >= 1  # other tests' entries may go too
    left = sorted(
        o.object_name
        for o in operator_store.list_objects(bucket_name=BUCKET, prefix=f"cache/{ns}/", recursive=True)
    )
    assert left == [f"cache/{ns}/{new}/complete", f"cache/{ns}/{new}/volume.raw"]
