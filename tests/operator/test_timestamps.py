"""The one timestamp format: what kubecircus stamps compares, as a string, with what Kubernetes
writes (the queue orders ``status.queuedAt`` against ``creationTimestamp``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from kubecircus.timestamps import parse, stamp


def test_stamps_read_back_and_order_like_kubernetes_times():
    moment = datetime(2026, 11, 23, 9, 5, 7, tzinfo=UTC)
    assert stamp(moment) == "2026-11-23T09:05:07Z"
    assert parse(stamp(moment)) == moment
    kubernetes = "2026-11-23T09:05:08Z"  # a creationTimestamp one second later
    assert stamp(moment) < kubernetes and parse(kubernetes) - moment == timedelta(seconds=1)


def test_an_aware_time_elsewhere_is_stamped_in_utc():
    tokyo = datetime(2026, 11, 23, 18, 5, 7, tzinfo=timezone(timedelta(hours=9)))
    assert stamp(tokyo) == "2026-11-23T09:05:07Z"
    assert parse("2026-11-23T18:05:07+09:00") == datetime(2026, 11, 23, 9, 5, 7, tzinfo=UTC)
