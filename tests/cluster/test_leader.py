"""Leader election against the real API server (issue 8, item 5): skewed clocks, a hung renew,
a failed renew, a release. Short timings (lease 3 s, renew deadline 2 s) keep it quick."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client

from kubecircus.operator.leader import LeaderElector, Timing

from kubetest import api_client, namespace

FAST = Timing(lease=3.0, renew_deadline=2.0, retry=0.3)


@pytest.fixture
def lease_ns(core):
    with namespace(core, "lease") as name:
        yield name


def elector(ns: str, identity: str, **kwargs) -> LeaderElector:
    return LeaderElector(api_client(), ns, "kubecircus-operator", identity, FAST, **kwargs)


def renew_for(candidate: LeaderElector, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert candidate.try_acquire_or_renew()
        time.sleep(FAST.retry)


class Blackhole:
    """A local TCP server that accepts connections and never answers: a renew that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def api(self) -> client.CoordinationV1Api:
        configuration = client.Configuration()
        configuration.host = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        return client.CoordinationV1Api(client.ApiClient(configuration))

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_standby_waits_out_the_whole_lease_as_it_watched_it(lease_ns):
    leader, standby = elector(lease_ns, "a"), elector(lease_ns, "b")
    assert leader.try_acquire_or_renew() and leader.leading()
    assert not standby.try_acquire_or_renew()
    renew_for(leader, 2 * FAST.lease)  # kept alive past a lease duration: nobody takes it
    assert not standby.try_acquire_or_renew() and not standby.leading()
    seen = time.monotonic()  # the leader stops renewing (a crash): no release
    while not standby.try_acquire_or_renew():
        time.sleep(0.1)
    assert time.monotonic() - seen >= FAST.lease - FAST.retry
    assert standby.leading() and standby.holder() == "b"


@pytest.mark.parametrize("skew", [timedelta(hours=1), -timedelta(hours=1)])
def test_clock_skew_between_replicas_never_makes_a_second_leader(lease_ns, skew):
    """The old election compared the standby's clock with the holder's renewTime: a standby an
    hour ahead saw every lease as expired. Here only each replica's own monotonic clock counts."""
    leader = elector(lease_ns, "a", wall=lambda: datetime.now(UTC) - skew)
    standby = elector(lease_ns, "b", wall=lambda: datetime.now(UTC) + skew)
    assert leader.try_acquire_or_renew()
    deadline = time.monotonic() + 2 * FAST.lease
    while time.monotonic() < deadline:
        assert leader.try_acquire_or_renew()
        assert not standby.try_acquire_or_renew()
        time.sleep(FAST.retry)


def test_a_leader_whose_renew_hangs_stops_before_a_standby_can_lead(lease_ns):
    leader, standby = elector(lease_ns, "a"), elector(lease_ns, "b")
    assert leader.try_acquire_or_renew()
    hole = Blackhole()
    leader.coordination = hole.api()  # from now on its renews hang (until the call's own timeout)
    stop = threading.Event()
    changes: list[tuple[bool, float]] = []
    keeper = threading.Thread(
        target=leader.keep, args=(stop, lambda now: changes.append((now, time.monotonic())))
    )
    keeper.start()
    stopped_leading = None
    try:
        while not standby.try_acquire_or_renew():
            if stopped_leading is None and not leader.leading():
                stopped_leading = time.monotonic()
            time.sleep(0.05)
        took_over = time.monotonic()
    finally:
        stop.set()
        hole.close()
        keeper.join(timeout=10)
    assert stopped_leading is not None and stopped_leading < took_over, "two leaders at once"
    assert not leader.leading()
    assert changes and changes[0][0] is False  # told, so it can stand by (no process exit)


def test_one_failed_renew_does_not_cost_leadership(lease_ns):
    leader = elector(lease_ns, "a")
    assert leader.try_acquire_or_renew()
    working = leader.coordination
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused at once
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{refused.getsockname()[1]}"
    leader.coordination = client.CoordinationV1Api(client.ApiClient(configuration))
    assert not leader._attempt()  # an API blip
    assert leader.leading()  # still inside the renew deadline
    leader.coordination = working
    assert leader.try_acquire_or_renew() and leader.leading()
    refused.close()


def test_a_released_lease_is_taken_at_once(lease_ns):
    leader, standby = elector(lease_ns, "a"), elector(lease_ns, "b")
    assert leader.try_acquire_or_renew()
    assert not standby.try_acquire_or_renew()
    leader.release()
    assert not leader.leading()
    assert standby.try_acquire_or_renew()  # no lease-long wait after a clean exit
    lease = client.CoordinationV1Api(api_client()).read_namespaced_lease("kubecircus-operator", lease_ns)
    assert lease.spec.holder_identity == "b" and lease.spec.lease_transitions == 1


def test_timings_that_could_make_two_leaders_are_refused():
    with pytest.raises(ValueError, match="renew_deadline < lease"):
        Timing(lease=10, renew_deadline=15, retry=2)


class SlowReads:
    """The real Lease API, with reads that take ``delay`` seconds to come back."""

    def __init__(self, api: client.CoordinationV1Api, delay: float) -> None:
        self.api, self.delay = api, delay

    def read_namespaced_lease(self, *args, **kwargs):
        lease = self.api.read_namespaced_lease(*args, **kwargs)
        time.sleep(self.delay)
        return lease

    def __getattr__(self, name):
        return getattr(self.api, name)


def test_a_slow_read_never_shortens_the_standbys_wait(lease_ns):
    """Expiry counts from when the standby *saw* the record (after its read returned), never
    from when it asked: a slow read must not eat the leader's margin."""
    leader, standby = elector(lease_ns, "a"), elector(lease_ns, "b")
    assert leader.try_acquire_or_renew()
    renewed = time.monotonic()  # the leader's last renew has landed; it stops renewing now
    standby.coordination = SlowReads(standby.coordination, delay=1.5)
    while not standby.try_acquire_or_renew():
        pass
    assert time.monotonic() - renewed >= FAST.lease + 1.5 - 0.1


def test_a_replica_that_stood_down_never_leads_again(lease_ns):
    leader = elector(lease_ns, "a")
    assert leader.try_acquire_or_renew() and leader.leading()
    leader.stand_down()  # a clean exit has begun: in-flight work must not be let through
    assert not leader.leading()
    assert leader.try_acquire_or_renew()  # it still holds the Lease until it releases it...
    assert not leader.leading()  # ...but it does not count as leader any more
