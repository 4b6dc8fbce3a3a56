"""Where kubecircus keeps things in its bucket, and which inputs a namespace may read. Pure.

Layout (short keys: MinIO caps session policies at 2,048 characters, and they name prefixes)::

    cache/<namespace>/<key>/{volume.mhd,volume.raw,volume.json,complete}   converted volumes
    cache/<namespace>/listings/<digest>                                     listing → volume key
    jobs/<namespace>/<job-uid>/{manifest.json,plugin-log.txt,out/...}      what a job produced

A cache entry counts only once its ``complete`` marker exists (it is written last). The cache is
per namespace, so one tenant's entries can never be served to another.

The namespace rule (no confused deputy): a PluginJob in namespace ``ns`` may read only keys under
``ns/`` in one of the configured input buckets. Anything else is refused before a pod starts.
"""

from __future__ import annotations

import re

CACHE_FILES = ("volume.mhd", "volume.raw", "volume.json")
COMPLETE = "complete"
MANIFEST = "manifest.json"
PLUGIN_LOG = "plugin-log.txt"
#: Characters that would act as wildcards or variables in an IAM policy, or are not key text.
_UNSAFE_PREFIX = re.compile(r"[*?$\\\x00-\x1f\x7f]")


def cache_prefix(namespace: str, key: str) -> str:
    return f"cache/{namespace}/{key}/"


def listing_key(namespace: str, digest: str) -> str:
    return f"cache/{namespace}/listings/{digest}"


def job_prefix(namespace: str, uid: str) -> str:
    return f"jobs/{namespace}/{uid}/"


def output_key(namespace: str, uid: str, name: str) -> str:
    """``name`` is a path below the plug-in's out/ folder."""
    return f"{job_prefix(namespace, uid)}out/{name}"


def input_refusal(namespace: str, bucket: str, prefix: str, input_buckets: tuple[str, ...]) -> str | None:
    """Why a job in ``namespace`` may not read ``s3://bucket/prefix``, or None when it may."""
    where = f"s3://{bucket}/{prefix}"
    if bucket not in input_buckets:
        allowed = ", ".join(input_buckets) or "(none configured)"
        return f"{where}: bucket '{bucket}' is not an input bucket (input buckets: {allowed})"
    if not prefix.startswith(f"{namespace}/"):
        return (
            f"{where}: jobs in namespace '{namespace}' read only keys under '{namespace}/' "
            f"(upload the series to s3://{bucket}/{namespace}/...)"
        )
    if _UNSAFE_PREFIX.search(prefix) or any(part.strip() in {".", ".."} for part in prefix.split("/")):
        return f"{where}: the prefix holds wildcard, control or '.'/'..' path segments"
    if "//" in prefix:
        return f"{where}: the prefix holds an empty path segment ('//')"
    return None
