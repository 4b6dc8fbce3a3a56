"""The one rule for what counts as a store outage (pure logic: fabricated S3 errors)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import urllib3
from minio.error import S3Error

from kubecircus.objectstore.client import unavailable


def s3_error(code: str, status: int) -> S3Error:
    return S3Error(SimpleNamespace(status=status), code, "m", "/b", "r", "h")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "status", "outage"),
    [
        ("XMinioIAMNotInitialized", 503, True),  # MinIO just restarted: seen in CI
        ("XMinioServerNotInitialized", 503, True),
        ("SlowDown", 503, True),
        ("SomeVendorBusyCode", 503, True),  # another S3 store's name for being down
        ("InternalError", 500, True),
        ("AccessDenied", 403, False),  # a credentials problem is not waited out
        ("NoSuchKey", 404, False),
        ("PreconditionFailed", 412, False),  # the object changed: a job-level answer
    ],
)
def test_an_s3_error_is_an_outage_only_when_the_store_is_in_trouble(code, status, outage):
    assert unavailable(s3_error(code, status)) is outage


def test_refused_connections_and_timeouts_are_outages_and_plain_bugs_are_not():
    assert unavailable(urllib3.exceptions.MaxRetryError(None, "/", "refused"))
    assert unavailable(TimeoutError())
    assert not unavailable(ValueError("a bug"))
