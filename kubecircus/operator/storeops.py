"""The operator's own object-store work, as its dedicated store user (never the admin's keys).

Minting each step's credentials, keeping the plug-in's log, reading small results for the
status, deleting a job's outputs, and expiring the volume cache. Errors propagate: an outage
leaves the job where it is, and the next round tries again (it is never a job's failure).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from kubecircus.objectstore import layout, sts
from kubecircus.objectstore.client import (
    Credentials,
    StoreConfig,
    connect,
    delete_prefix,
    put_bytes,
    read_small,
)

from .cache import CacheEntry, classify, expired_aliases, plan_expiry
from .config import OperatorConfig

log = logging.getLogger(__name__)


class StoreUnavailable(ConnectionError):
    """The store answered, but not with what kubecircus needs now; the next round tries again."""


def store_config(config: OperatorConfig) -> StoreConfig:
    return StoreConfig(
        endpoint=config.store_endpoint,
        bucket=config.store_bucket,
        secure=config.store_secure,
        region=config.store_region,
        ca_file=config.store_ca_file,
    )


class StoreOps:
    def __init__(self, config: OperatorConfig) -> None:
        self.config = config
        self.store_config = store_config(config)
        self.credentials = Credentials.from_dir(config.store_credentials)
        self.client = connect(self.store_config, self.credentials, timeout=15)
        self.bucket = config.store_bucket

    def mint(self, policy: str, seconds: int, session: str) -> dict[str, str]:
        try:
            return sts.mint(self.store_config, self.credentials, policy, seconds, session).secret_data()
        except ValueError as exc:  # the STS endpoint's own error answer (e.g. 5xx while it starts)
            raise StoreUnavailable(f"STS AssumeRole failed: {exc}") from exc

    def put_log(self, key: str, text: str | None, cap: int) -> None:
        """``text`` was read with ``cap + 1`` bytes at most: more than ``cap`` means it was cut."""
        data = (text or "").encode("utf-8", "replace")
        if len(data) > cap:
            data = data[:cap] + f"\n[kubecircus: the log was cut at {cap} bytes]\n".encode()
        put_bytes(self.client, self.bucket, key, data, "text/plain; charset=utf-8")

    def results(self, namespace: str, uid: str, limit: int) -> Any:
        """The stored results.json when it is at most ``limit`` bytes (else None)."""
        key = layout.output_key(namespace, uid, "results.json")
        try:
            data = read_small(self.client, self.bucket, key, limit)
            return json.loads(data) if data is not None else None
        except ValueError:  # larger than the inline limit, or no longer what collect checked
            return None

    def delete_prefix(self, prefix: str) -> int:
        count = delete_prefix(self.client, self.bucket, prefix)
        log.info("deleted %d objects under %s", count, prefix)
        return count

    def sweep_cache(self, now: datetime) -> int:
        """Delete cache entries past their age or beyond the total size (least recently used
        first), and aliases that point at deleted entries. Returns how many entries went."""
        entries: dict[str, CacheEntry] = {}
        aliases: dict[str, datetime] = {}
        junk: list[str] = []
        for obj in self.client.list_objects(bucket_name=self.bucket, prefix="cache/", recursive=True):
            kind, key, name = classify(obj.object_name)
            if kind == "alias":
                aliases[key] = obj.last_modified or now
            elif kind == "entry":
                entry = entries.get(key) or CacheEntry(key)
                entries[key] = entry.add(name, obj.size, obj.last_modified or now)
            else:
                junk.append(key)
        for key in junk:
            self.client.remove_object(bucket_name=self.bucket, object_name=key)
        doomed = plan_expiry(
            list(entries.values()), now, self.config.cache_max_age_seconds, self.config.cache_max_bytes
        )
        for prefix in doomed:  # the marker first: a half-deleted entry never counts as complete
            self.client.remove_object(bucket_name=self.bucket, object_name=prefix + layout.COMPLETE)
            delete_prefix(self.client, self.bucket, prefix)
        for key in expired_aliases(aliases, now, self.config.cache_max_age_seconds):
            self.client.remove_object(bucket_name=self.bucket, object_name=key)
        if doomed:
            log.info("cache: deleted %d entries", len(doomed))
        return len(doomed)
