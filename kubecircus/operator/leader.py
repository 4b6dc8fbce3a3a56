"""Leader election on a coordination.k8s.io Lease, with client-go's semantics.

kopf's own peering freezes every replica when two share a priority, which is no use for a hot
standby; this is client-go's ``leaderelection`` in a few lines:

- **Expiry is judged on the local monotonic clock.** A standby notes when *it* last saw the
  lease record change (its resourceVersion) and takes the lease only after seeing no change for
  the lease's duration. No replica compares its clock with another's ``renewTime``: clock skew
  between nodes cannot make a standby lead early.
- **The leader stops before its lease can expire.** It renews every ``retry`` seconds and counts
  itself leader only while its last successful renew *started* less than ``renew_deadline`` ago
  (10 s, against a 15 s lease). A renew that fails is tried again; a renew that hangs or keeps
  failing makes ``leading()`` false on its own, so the engine stops admitting before any standby
  can take over.
- **Losing the lease is not a crash.** The replica stops operating and stands by again; brief
  API blips cost leadership at worst, never a CrashLoopBackOff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from kubernetes import client
from kubernetes.client.rest import ApiException

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    """renew_deadline < lease, so a leader gives up before it can expire; the gap (10 s) is longer
    than any single API call may take (``kube.REQUEST_TIMEOUT``), so a write sent just before
    the leader gives up has landed or failed before a standby can lead."""

    lease: float = 20.0
    renew_deadline: float = 10.0
    retry: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry < self.renew_deadline < self.lease:
            raise ValueError("leader election needs 0 < retry < renew_deadline < lease")


def _wall() -> datetime:
    return datetime.now(UTC)


class LeaderElector:
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        identity: str,
        timing: Timing = Timing(),
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _wall,
    ) -> None:
        self.coordination = client.CoordinationV1Api(api)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.timing, self.clock, self.wall = timing, clock, wall
        self._seen_version: str | None = None
        self._seen_at = 0.0  # local monotonic time the record was last seen to change
        self._renewed_at: float | None = None  # when our last successful acquire/renew started
        self._stood_down = False
        #: Seconds allowed to each API call: a hung renew must end well inside the deadline.
        self._call_timeout = max(1.0, self.timing.renew_deadline / 2)

    def leading(self) -> bool:
        """True while the last successful renew started less than the renew deadline ago."""
        return self._renewed_at is not None and self.clock() - self._renewed_at < self.timing.renew_deadline

    def try_acquire_or_renew(self) -> bool:
        """One attempt: renew our lease, or take one that is free or has not changed for its whole
        duration as this replica has watched it. False when someone else holds it or a racing
        replica wrote first (the resourceVersion guard)."""
        started = self.clock()
        timeout = self._call_timeout
        try:
            lease = self.coordination.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=timeout
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = client.V1Lease(metadata=client.V1ObjectMeta(name=self.name), spec=self._spec(0, None))
            try:
                created = self.coordination.create_namespaced_lease(
                    self.namespace, body, _request_timeout=timeout
                )
            except ApiException as create_exc:
                if create_exc.status == 409:
                    return False
                raise
            return self._won(created, started)
        spec = lease.spec
        if lease.metadata.resource_version != self._seen_version:
            # observed *now*, after the read returned: never earlier than the write it shows
            self._seen_version, self._seen_at = lease.metadata.resource_version, self.clock()
        holder = spec.holder_identity or ""
        duration = spec.lease_duration_seconds or self.timing.lease
        if holder and holder != self.identity and self.clock() - self._seen_at < duration:
            return False
        mine = holder == self.identity
        transitions = (spec.lease_transitions or 0) + (0 if mine else 1)
        lease.spec = self._spec(transitions, spec.acquire_time if mine else None)
        try:  # replace carries the resourceVersion read: a racing replica gets 409
            replaced = self.coordination.replace_namespaced_lease(
                self.name, self.namespace, lease, _request_timeout=timeout
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return self._won(replaced, started)

    def _won(self, lease: client.V1Lease, started: float) -> bool:
        self._seen_version, self._seen_at = lease.metadata.resource_version, self.clock()
        if not self._stood_down:
            self._renewed_at = started  # counted from before the call: conservative
        return True

    def _spec(self, transitions: int, acquired: datetime | None) -> client.V1LeaseSpec:
        now = self.wall()  # for people reading the Lease; no decision reads it back
        return client.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=int(self.timing.lease),
            acquire_time=acquired or now,
            renew_time=now,
            lease_transitions=transitions,
        )

    def _attempt(self) -> bool:
        try:
            return self.try_acquire_or_renew()
        except Exception as exc:  # an API blip: the next attempt, within the deadline, may do
            log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            return False

    def wait_until_leader(self, stop: threading.Event | None = None) -> bool:
        """Stand by until this replica holds the lease (False if stopped first)."""
        stop = stop or threading.Event()
        announced = False
        while not stop.is_set():
            if self._attempt():
                log.info("leader: %s holds the lease %s/%s", self.identity, self.namespace, self.name)
                return True
            if not announced:
                log.info("standby: %s holds the lease %s/%s", self.holder(), self.namespace, self.name)
                announced = True
            stop.wait(self.timing.retry)
        return False

    def keep(self, stop: threading.Event, on_change: Callable[[bool], None]) -> None:
        """Renew while leading; after a loss, stand by and try to lead again. ``on_change`` is
        told each change (the engine's own gate is ``leading()``, which needs no thread)."""
        was = self.leading()
        while not stop.wait(self.timing.retry):
            self._attempt()
            now = self.leading()
            if now != was:
                if now:
                    log.info("leader again: %s holds the lease", self.identity)
                else:
                    log.error("lost the leader lease: this replica stops operating and stands by")
                on_change(now)
                was = now

    def holder(self) -> str | None:
        try:
            lease = self.coordination.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self._call_timeout
            )
        except (ApiException, OSError):
            return None
        return lease.spec.holder_identity

    def stand_down(self) -> None:
        """Stop counting as leader at once, for good (a clean exit): nothing this replica still
        has in flight is let through ``leading()`` any more, and no renew makes it leader again."""
        self._stood_down = True
        self._renewed_at = None

    def release(self) -> None:
        """Give the lease up on a clean exit, after ``stand_down`` and after the threads that
        write have stopped: a standby takes it at once, not after it expires."""
        self.stand_down()
        try:
            lease = self.coordination.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self._call_timeout
            )
            if lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = ""
                self.coordination.replace_namespaced_lease(
                    self.name, self.namespace, lease, _request_timeout=self._call_timeout
                )
        except (ApiException, OSError) as exc:
            log.warning("could not release the lease: %s", exc)
