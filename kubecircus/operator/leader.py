"""Leader election on a coordination.k8s.io Lease: exactly one replica operates at a time.

kopf's own peering freezes every replica when two share a priority, which is no use for a
hot standby. Here the holder renews the Lease every few seconds; a standby takes it over once
it has not been renewed for ``LEASE_SECONDS``. A leader that fails to renew exits at once (the
kubelet restarts it as a standby), so two replicas never admit jobs at the same time.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from kubernetes import client
from kubernetes.client.rest import ApiException

log = logging.getLogger(__name__)
LEASE_SECONDS = 15
RENEW_SECONDS = 5


def _now() -> datetime:
    return datetime.now(UTC)


class LeaderLease:
    def __init__(self, api: client.ApiClient, namespace: str, name: str, identity: str) -> None:
        self.coordination = client.CoordinationV1Api(api)
        self.namespace, self.name, self.identity = namespace, name, identity

    def _spec(self, transitions: int) -> client.V1LeaseSpec:
        now = _now()
        return client.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=LEASE_SECONDS,
            acquire_time=now,
            renew_time=now,
            lease_transitions=transitions,
        )

    def try_acquire(self) -> bool:
        """Take or renew the lease if it is free, expired or ours; False if someone else holds it."""
        try:
            lease = self.coordination.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = client.V1Lease(metadata=client.V1ObjectMeta(name=self.name), spec=self._spec(0))
            try:
                self.coordination.create_namespaced_lease(self.namespace, body)
                return True
            except ApiException as create_exc:
                if create_exc.status == 409:
                    return False
                raise
        spec = lease.spec
        renewed = spec.renew_time or spec.acquire_time
        expired = renewed is None or _now() - renewed > timedelta(
            seconds=spec.lease_duration_seconds or LEASE_SECONDS
        )
        if spec.holder_identity != self.identity and not expired:
            return False
        transitions = (spec.lease_transitions or 0) + (0 if spec.holder_identity == self.identity else 1)
        new_spec = self._spec(transitions)
        if spec.holder_identity == self.identity and spec.acquire_time:
            new_spec.acquire_time = spec.acquire_time
        lease.spec = new_spec
        try:  # replace carries the resourceVersion we read: a racing replica gets 409
            self.coordination.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def wait_until_leader(self) -> None:
        announced = False
        while not self.try_acquire():
            if not announced:
                log.info("standby: %s holds the lease %s/%s", self.holder(), self.namespace, self.name)
                announced = True
            time.sleep(2)
        log.info("leader: %s holds the lease %s/%s", self.identity, self.namespace, self.name)

    def holder(self) -> str | None:
        try:
            return self.coordination.read_namespaced_lease(self.name, self.namespace).spec.holder_identity
        except ApiException:
            return None

    def release(self) -> None:
        try:
            lease = self.coordination.read_namespaced_lease(self.name, self.namespace)
            if lease.spec.holder_identity == self.identity:
                lease.spec.renew_time = _now() - timedelta(seconds=LEASE_SECONDS + 1)
                self.coordination.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as exc:
            log.warning("could not release the lease: %s", exc.reason)
