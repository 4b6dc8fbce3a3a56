"""Talking to the store: configuration, a client, and the one rule for what counts as an outage.

Everything goes through the ``minio`` client's S3 calls (no MinIO-only API), with keyword
arguments only. :func:`unavailable` is the single place that decides whether an error means
"the store is down or overloaded" (retry later, never a job's fault) or something else.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: S3 error codes that mean the store, not the request, is in trouble.
TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "XMinioServerNotInitialized",
        "XMinioIAMNotInitialized",  # a restarted MinIO answers before its IAM has loaded
        "XMinioStorageFull",
        "XMinioBackendDown",
        "OperationTimedOut",
    }
)
CHUNK = 1 << 20


@dataclass(frozen=True)
class StoreConfig:
    """Where the store is. Set by the chart (``objectStore.*``) as ``KUBECIRCUS_STORE_*``."""

    endpoint: str  # host:port
    bucket: str = "kubecircus"
    secure: bool = False
    region: str = "us-east-1"
    #: PEM file of the CA that signed the store's certificate ("" = the system's).
    ca_file: str = ""

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> StoreConfig:
        env = os.environ if environ is None else environ
        endpoint = env.get("KUBECIRCUS_STORE_ENDPOINT", "")
        if not endpoint:
            raise ValueError("KUBECIRCUS_STORE_ENDPOINT is not set (host:port of the object store)")
        ca_file = env.get("KUBECIRCUS_STORE_CA_FILE", "")
        if not ca_file and env.get("KUBECIRCUS_STORE_CA_PEM"):  # workers get the PEM text itself
            ca_file = os.path.join(env.get("TMPDIR", "/tmp"), "kubecircus-store-ca.pem")
            Path(ca_file).write_text(env["KUBECIRCUS_STORE_CA_PEM"], encoding="utf-8")
        return cls(
            endpoint=endpoint,
            bucket=env.get("KUBECIRCUS_STORE_BUCKET", "kubecircus"),
            secure=env.get("KUBECIRCUS_STORE_SECURE", "false").lower() in {"1", "true", "yes"},
            region=env.get("KUBECIRCUS_STORE_REGION", "") or "us-east-1",
            ca_file=ca_file,
        )

    def http(self, timeout: float = 30.0, pool: int = 16) -> urllib3.PoolManager:
        """Bounded timeouts; urllib3 retries nothing (our callers decide, see :func:`retrying`)."""
        kwargs: dict[str, object] = {}
        if self.secure:
            kwargs["cert_reqs"] = "CERT_REQUIRED"
            if self.ca_file:
                kwargs["ca_certs"] = self.ca_file
        return urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(5.0, timeout), read=timeout),
            maxsize=pool,
            retries=False,
            **kwargs,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None

    @classmethod
    def from_dir(cls, folder: str | os.PathLike[str]) -> Credentials:
        """A mounted Secret: files accessKey, secretKey and (for STS credentials) sessionToken."""
        path = Path(folder)
        token = path / "sessionToken"
        return cls(
            (path / "accessKey").read_text().strip(),
            (path / "secretKey").read_text().strip(),
            token.read_text().strip() if token.exists() else None,
        )


def connect(config: StoreConfig, credentials: Credentials, timeout: float = 30.0, pool: int = 16) -> Minio:
    return Minio(
        endpoint=config.endpoint,
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        session_token=credentials.session_token,
        secure=config.secure,
        region=config.region,  # given, so no GetBucketLocation call (and no permission for it)
        http_client=config.http(timeout, pool),
    )


def unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the store is unreachable, failing (5xx) or too slow."""
    if isinstance(exc, S3Error):
        status = getattr(exc.response, "status", 0) or 0
        # Any 500/503 is the store's trouble, whatever code a given store chose to name it.
        return exc.code in TRANSIENT_CODES or status in {500, 502, 503, 504}
    if isinstance(exc, ServerError | InvalidResponseError):
        return True
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


def retrying(call: Callable[[], T], budget: float, what: str, pause: float = 0.5) -> T:
    """Run ``call``; while the store is unavailable, try again with backoff for ``budget`` seconds.

    Any other error propagates at once. After the budget the last outage error propagates, and
    the caller turns it into an infrastructure retry (the job is never failed for an outage).
    """
    deadline = time.monotonic() + budget
    while True:
        try:
            return call()
        except Exception as exc:
            if not unavailable(exc) or time.monotonic() + pause > deadline:
                raise
            log.warning("%s: object store unavailable (%s); retrying in %.1f s", what, exc, pause)
            time.sleep(pause)
            pause = min(pause * 2, 8.0)


class HashingReader:
    """A file-like object that hashes what is read through it (for uploads)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha256.update(data)
        self.size += len(data)
        return data


def download(store: Minio, bucket: str, key: str, target: Path, etag: str | None = None) -> str:
    """Stream one object into ``target``; returns its sha256 (hex).

    With ``etag`` the store sends the object only if it is still that version (If-Match): what
    arrives is what was listed, even if someone overwrites the object meanwhile (S3 error
    PreconditionFailed otherwise); the sha256 is then skipped (the ETag names the content) and
    "" returned.
    """
    digest = hashlib.sha256() if etag is None else None
    headers = {"If-Match": etag if etag.startswith('"') else f'"{etag}"'} if etag else None
    response = store.get_object(bucket_name=bucket, object_name=key, request_headers=headers)
    try:
        with target.open("wb") as out:
            for chunk in response.stream(CHUNK):
                if digest is not None:
                    digest.update(chunk)
                out.write(chunk)
    finally:
        response.close()
        response.release_conn()
    return digest.hexdigest() if digest is not None else ""


def read_small(store: Minio, bucket: str, key: str, limit: int) -> bytes | None:
    """An object's bytes if it exists and is at most ``limit`` long; None when absent."""
    try:
        response = store.get_object(bucket_name=bucket, object_name=key, length=limit + 1)
    except S3Error as exc:
        if exc.code in {"NoSuchKey", "NoSuchObject"}:
            return None
        raise
    try:
        data = response.read()
    finally:
        response.close()
        response.release_conn()
    if len(data) > limit:
        raise ValueError(f"{key} is larger than {limit} bytes")
    return data


def put_bytes(store: Minio, bucket: str, key: str, data: bytes, content_type: str) -> None:
    import io

    store.put_object(
        bucket_name=bucket,
        object_name=key,
        data=io.BytesIO(data),
        length=len(data),
        content_type=content_type,
    )


def upload(store: Minio, bucket: str, key: str, source: BinaryIO, length: int, content_type: str) -> str:
    """Upload ``length`` bytes from ``source``; returns their sha256 (hex)."""
    reader = HashingReader(source)
    store.put_object(
        bucket_name=bucket,
        object_name=key,
        data=reader,  # type: ignore[arg-type]
        length=length,
        content_type=content_type,
        part_size=16 * CHUNK if length > 64 * CHUNK else 0,
    )
    if reader.size != length:
        raise OSError(f"{key}: read {reader.size} bytes, expected {length}")
    return reader.sha256.hexdigest()


def delete_prefix(store: Minio, bucket: str, prefix: str) -> int:
    """Delete every object under ``prefix``; returns how many."""
    from minio.deleteobjects import DeleteObject

    names = [o.object_name for o in store.list_objects(bucket_name=bucket, prefix=prefix, recursive=True)]
    if not names:
        return 0
    errors = list(
        store.remove_objects(bucket_name=bucket, delete_object_list=[DeleteObject(n) for n in names])
    )
    if errors:
        raise OSError(f"could not delete {len(errors)} objects under {prefix}: {errors[0]}")
    return len(names)
