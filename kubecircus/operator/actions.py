"""What a reconcile decision asks for: status patches, children to create or delete, Events,
and the object-store work the operator does itself (credentials, the plug-in's log, cleanup)."""

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
    #: A head start, not a need: a refusal (quota, a policy, a taken name) is logged and the
    #: plan goes on; the child is made the ordinary way later, and refused there if it must be.
    optional: bool = False


@dataclass(frozen=True)
class ShortenDeadline:
    """Lower a pod's activeDeadlineSeconds (counted from its start) to ``seconds``; the API
    server only lets it go down, so a replay of the same decision changes nothing."""

    pod: str
    seconds: int


@dataclass(frozen=True)
class Delete:
    kind: str  # Pod, PersistentVolumeClaim, NetworkPolicy, Secret
    name: str
    #: Seconds of grace for a pod (None: the pod's own); 0 kills at once.
    grace: int | None = None


@dataclass(frozen=True)
class Warn:
    """Only an Event, no state change (e.g. a resubmit that cannot be done)."""

    event: Event


@dataclass(frozen=True)
class MintCredentials:
    """Mint short-lived store credentials limited to ``policy`` and (re)create the Secret
    ``manifest`` holding them; ``seconds`` is how long they stay valid."""

    manifest: dict[str, Any]
    policy: str
    seconds: int


@dataclass(frozen=True)
class StoreLog:
    """Copy the plug-in container's stdout (size-capped) to ``key`` in kubecircus's bucket."""

    pod: str
    key: str


@dataclass(frozen=True)
class DeleteObjects:
    """Delete every object under ``prefix`` in kubecircus's bucket."""

    prefix: str


@dataclass(frozen=True)
class SetFinalizer:
    """Add (or remove) kubecircus's finalizer on the job: outputs are deleted with it."""

    present: bool


Action = (
    PatchStatus
    | Create
    | Delete
    | Warn
    | MintCredentials
    | StoreLog
    | DeleteObjects
    | SetFinalizer
    | ShortenDeadline
)


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)

    def add(self, *actions: Action) -> Plan:
        self.actions.extend(actions)
        return self
