"""Which cached volumes the sweep deletes (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kubecircus.operator.builders import quantity_bytes
from kubecircus.operator.cache import CacheEntry, classify, expired_aliases, plan_expiry

NOW = datetime(2026, 6, 1, tzinfo=UTC)
K1, K2, K3 = "a" * 64, "b" * 64, "c" * 64


def entry(key: str, used_days_ago: float | None, size: int, ns: str = "team") -> CacheEntry:
    e = CacheEntry(f"cache/{ns}/{key}/")
    e = e.add("volume.raw", size, NOW - timedelta(days=used_days_ago or 0, hours=2))
    if used_days_ago is not None:
        e = e.add("complete", 0, NOW - timedelta(days=used_days_ago))
    return e


@pytest.mark.parametrize(
    ("entries", "max_age_days", "max_bytes", "doomed"),
    [
        ([entry(K1, 1, 10), entry(K2, 40, 10)], 30, 10**9, [K2]),  # too old since last use
        ([entry(K1, 1, 60), entry(K2, 2, 60), entry(K3, 3, 60)], 30, 130, [K3]),  # size: LRU first
        ([entry(K1, 1, 60), entry(K2, 2, 60), entry(K3, 3, 60)], 30, 50, [K3, K2, K1]),
        ([entry(K1, None, 10)], 30, 10**9, [K1]),  # an upload that never completed, 2 h old
        ([entry(K1, 100, 10)], 0, 10**9, []),  # age 0 keeps everything
    ],
)
def test_plan_expiry(entries, max_age_days, max_bytes, doomed):
    got = plan_expiry(entries, NOW, max_age_days * 86400, max_bytes)
    assert [p.split("/")[2] for p in got] == doomed


def test_a_fresh_incomplete_entry_is_left_to_its_upload():
    fresh = CacheEntry(f"cache/team/{K1}/").add("volume.raw", 10, NOW - timedelta(minutes=5))
    assert plan_expiry([fresh], NOW, 86400, 10**9) == []


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        (f"cache/team/{K1}/volume.raw", "entry"),
        (f"cache/team/{K1}/complete", "entry"),
        (f"cache/team/listings/{K2}", "alias"),
        (f"cache/team/{K1}/extra.bin", "junk"),
        ("cache/team/a/b/c", "junk"),
        ("cache/team/not-a-key/volume.raw", "junk"),
        (f"cache/team/listings/{K2}/x", "junk"),
    ],
)
def test_anything_not_in_the_layout_is_junk_to_delete(key, kind):
    assert classify(key)[0] == kind


def test_aliases_expire_with_age():
    aliases = {"cache/t/listings/old": NOW - timedelta(days=40), "cache/t/listings/new": NOW}
    assert expired_aliases(aliases, NOW, 30 * 86400) == ["cache/t/listings/old"]
    assert expired_aliases(aliases, NOW, 0) == []


@pytest.mark.parametrize(
    ("text", "value"), [("8Gi", 8 * 2**30), ("512Mi", 512 * 2**20), ("1G", 10**9), ("1000", 1000)]
)
def test_quantities(text, value):
    assert quantity_bytes(text) == value
