"""The one timestamp format of kubecircus: RFC 3339 in UTC to the second, as Kubernetes writes
``creationTimestamp`` — so stamps compare as strings, sort as times, and read back exactly.

Standard library only: the worker, the object-store layer and the operator all use it.
"""

from __future__ import annotations

from datetime import UTC, datetime

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def stamp(moment: datetime) -> str:
    """``2026-01-02T03:04:05Z`` (an aware time is converted to UTC first)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime(FORMAT)


def now_stamp() -> str:
    return stamp(datetime.now(UTC))


def parse(text: str) -> datetime:
    """An RFC 3339 time as Kubernetes and kubecircus write it (``Z`` or an offset) → aware UTC."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
