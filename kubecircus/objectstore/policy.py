"""IAM policies: the operator's own store user, and the session policy of each step. Pure.

Every stage and collect pod gets credentials minted by STS AssumeRole with an inline session
policy; the store grants the intersection of that policy and the operator user's. MinIO refuses
session policies longer than 2,048 characters, so :func:`stage_policy` names each input prefix
while that fits and otherwise widens to the namespace's whole input area — which is still only
what the namespace is entitled to (see ``layout.input_refusal``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

MAX_SESSION_POLICY = 2048
_ARN = "arn:aws:s3:::"


def _document(statements: list[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, separators=(",", ":"))


def _read_prefixes(by_bucket: dict[str, list[str]]) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = [
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [f"{_ARN}{b}/{p}*" for b, prefixes in by_bucket.items() for p in prefixes],
        }
    ]
    for bucket, prefixes in by_bucket.items():
        statements.append(
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"{_ARN}{bucket}"],
                "Condition": {"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}},
            }
        )
    return statements


def _minimal(prefixes: Iterable[str]) -> list[str]:
    """Drop prefixes that another one already covers."""
    kept: list[str] = []
    for prefix in sorted(set(prefixes)):
        if not any(prefix.startswith(k) for k in kept):
            kept.append(prefix)
    return kept


def stage_policy(namespace: str, inputs: Iterable[tuple[str, str]], bucket: str) -> str:
    """Read the job's input prefixes; read and write the namespace's cache."""
    by_bucket: dict[str, list[str]] = {}
    for input_bucket, prefix in inputs:
        by_bucket.setdefault(input_bucket, []).append(prefix)
    cache = {
        "Effect": "Allow",
        "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
        "Resource": [f"{_ARN}{bucket}/cache/{namespace}/*"],
    }
    narrow = {b: _minimal(p) for b, p in by_bucket.items()}
    policy = _document([*_read_prefixes(narrow), cache])
    if len(policy) <= MAX_SESSION_POLICY:
        return policy
    wide = {b: [f"{namespace}/"] for b in by_bucket}
    policy = _document([*_read_prefixes(wide), cache])
    if len(policy) > MAX_SESSION_POLICY:  # only with dozens of long bucket names
        raise ValueError(f"the staging policy needs {len(policy)} characters, over {MAX_SESSION_POLICY}")
    return policy


def collect_policy(namespace: str, uid: str, bucket: str) -> str:
    """Write this job's outputs, nothing else (not even read them back)."""
    return _document(
        [
            {
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": [f"{_ARN}{bucket}/jobs/{namespace}/{uid}/*"],
            }
        ]
    )


def operator_policy(bucket: str, input_buckets: Iterable[str]) -> str:
    """The operator's store user: its own bucket, and read access to the input buckets (which
    the stage credentials it mints narrow down to one job's prefixes)."""
    inputs = sorted(set(input_buckets))
    statements: list[dict[str, Any]] = [
        {
            "Effect": "Allow",
            "Action": [
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:AbortMultipartUpload",
                "s3:ListBucket",
            ],
            "Resource": [f"{_ARN}{bucket}", f"{_ARN}{bucket}/*"],
        }
    ]
    if inputs:
        statements.append(
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [r for b in inputs for r in (f"{_ARN}{b}", f"{_ARN}{b}/*")],
            }
        )
    return _document(statements)


def uploader_policy(namespace: str, input_buckets: Iterable[str]) -> str:
    """For a namespace's people: upload, read and delete series under ``<namespace>/`` only."""
    buckets = sorted(set(input_buckets))
    statements: list[dict[str, Any]] = [
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            "Resource": [f"{_ARN}{b}/{namespace}/*" for b in buckets],
        }
    ]
    for bucket in buckets:
        statements.append(
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"{_ARN}{bucket}"],
                "Condition": {"StringLike": {"s3:prefix": [f"{namespace}/*"]}},
            }
        )
    return _document(statements)
