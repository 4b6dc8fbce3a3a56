"""What a reconcile decision asks for: status patches, children to create or delete, Events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass(frozen=True)
class PatchStatus:
    """Merge-patch the job's status (guarded by the observed resourceVersion)."""

    patch: dict[str, Any]
    event: Event | None = None


@dataclass(frozen=True)
class Create:
    manifest: dict[str, Any]


@dataclass(frozen=True)
class Delete:
    kind: str  # Pod, PersistentVolumeClaim, NetworkPolicy
    name: str


@dataclass(frozen=True)
class Warn:
    """Only an Event, no state change (e.g. a resubmit that cannot be done)."""

    event: Event


Action = PatchStatus | Create | Delete | Warn


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)

    def add(self, *actions: Action) -> Plan:
        self.actions.extend(actions)
        return self
