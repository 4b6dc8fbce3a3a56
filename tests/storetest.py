"""Names and helpers shared by the tests that use a real object store."""

from __future__ import annotations

from pathlib import Path

from minio import Minio

from kubecircus.objectstore.client import Credentials

#: The operator's store user, as the chart's set-up Job creates it.
OPERATOR = Credentials("kubecircus-operator", "operator-secret-0123456789")
BUCKET, INPUTS = "kubecircus", "dicom"


def upload_folder(client: Minio, folder: Path, bucket: str, prefix: str) -> list[str]:
    keys = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = prefix + path.relative_to(folder).as_posix()
        client.fput_object(bucket_name=bucket, object_name=key, file_path=str(path))
        keys.append(key)
    return keys
