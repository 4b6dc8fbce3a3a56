"""What the NetworkPolicy enforcer (kube-router, firewall only) leaves open, measured.

1. A brand-new pod under a deny-all policy: kube-router writes its rules once it sees the pod's
   address, so the pod's first moments are unpoliced. The test records that window, and checks
   it closes and stays closed. The plug-in pod never relies on it: its ``prepare`` init
   container proves every door closed before the plug-in starts (tests/e2e/test_hostile.py).
2. The guard that keeps pod traffic on this machine must hold even for a pod a policy allows
   everything: kube-router ACCEPTs policy-compliant traffic in filter FORWARD, ahead of any rule
   after it, so the guard lives in the mangle table. "Outside" is a network namespace this test
   creates on the machine, at a documentation address (192.0.2.1) routed only into it.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from kubetest import namespace, run_to_completion, toolbox_pod, wait_for_pod

#: How long a new pod may stay unpoliced before the test calls the enforcer broken. prepare's
#: proof does not depend on it (it waits until every door is closed), but a slower enforcer
#: would slow every job's start.
WINDOW_LIMIT = 3.0
OUTSIDE_IP = "192.0.2.1"
log = logging.getLogger(__name__)
LISTENER = """
import socket
server = socket.create_server(("0.0.0.0", 9))  # before its namespace has the address
while True:
    server.accept()[0].close()
"""


def _timeline_script(peer_ip: str, attempts: int) -> str:
    """Every ~0.1 s: '<seconds since start> ok|blocked' for a TCP connection to the peer."""
    return (
        "s=$(cut -d' ' -f1 /proc/uptime); i=0; "
        f"while [ $i -lt {attempts} ]; do t=$(cut -d' ' -f1 /proc/uptime); "
        f"if nc -w 1 {peer_ip} 9090 -e /bin/true </dev/null 2>/dev/null; then r=ok; else r=blocked; fi; "
        'echo "$(awk -v a=$s -v b=$t "BEGIN {print b - a}") $r"; i=$((i + 1)); sleep 0.1; done'
    )


def _deny_all(k8s: client.ApiClient, ns: str, **spec: object) -> None:
    client.NetworkingV1Api(k8s).create_namespaced_network_policy(
        ns,
        client.V1NetworkPolicy(
            metadata=client.V1ObjectMeta(name="policy"),
            spec=client.V1NetworkPolicySpec(
                pod_selector=client.V1LabelSelector(match_labels={"isolated": "yes"}),
                policy_types=["Ingress", "Egress"],
                **spec,
            ),
        ),
    )


def _peer(core: client.CoreV1Api, ns: str) -> str:
    peer = toolbox_pod("peer", "while true; do echo hi | nc -l -p 9090; done", labels={"role": "peer"})
    peer.spec.restart_policy = "Always"
    core.create_namespaced_pod(ns, peer)
    return wait_for_pod(core, ns, "peer", {"Running"}).status.pod_ip


def test_a_new_pod_under_deny_all_is_cut_off_within_seconds_and_stays_cut_off(core, k8s):
    with namespace(core, "window") as ns:
        _deny_all(k8s, ns)
        peer_ip = _peer(core, ns)
        pod = toolbox_pod("newcomer", _timeline_script(peer_ip, 30), labels={"isolated": "yes"})
        _, out = run_to_completion(core, ns, pod)
    timeline = [(float(t), r) for t, r in (line.split() for line in out.splitlines() if line.strip())]
    reached = [t for t, r in timeline if r == "ok"]
    first_second = [r for t, r in timeline if t < 1.0]
    log.warning(  # the measurement this test exists to show (pytest -rP prints it)
        "a new pod under deny-all reached its peer %d times, the last at %.2f s; first second: "
        "%d of %d attempts connected",
        len(reached),
        max(reached, default=0.0),
        first_second.count("ok"),
        len(first_second),
    )
    assert len(timeline) == 30, out
    assert max(reached, default=0.0) < WINDOW_LIMIT, out
    # once closed, closed for good: no attempt after the first refusal gets through
    first_blocked = next(i for i, (_, r) in enumerate(timeline) if r == "blocked")
    assert all(r == "blocked" for _, r in timeline[first_blocked:]), out


def _ip(*args: str, pid: int | None = None) -> None:
    prefix = ["nsenter", f"--net=/proc/{pid}/ns/net"] if pid else []
    subprocess.run([*prefix, "ip", *args], check=True, capture_output=True)


@pytest.fixture
def outside_world() -> Iterator[int]:
    """A listener at OUTSIDE_IP:9 inside a network namespace of its own; yields the port.

    The namespace belongs to the listener process (``unshare --net``), never to ``ip netns``:
    that command turns /run/netns into a shared bind mount, after which containerd can no longer
    remove the network namespaces of pods that existed before (their deletion hangs on
    "device or resource busy"). It ends with the process. The route to OUTSIDE_IP points into
    the namespace and is checked before anything is sent, so no packet of this test can reach
    the machine's real network.
    """
    if os.geteuid() != 0:
        pytest.fail("creating a test network namespace needs root (the local cluster does too)")
    tag = f"{os.getpid() % 100000}"
    host_end, inner_end = f"kco{tag}h", f"kco{tag}n"
    server = subprocess.Popen(
        ["unshare", "--net", sys.executable, "-c", LISTENER],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _ip("link", "add", host_end, "type", "veth", "peer", "name", inner_end, "netns", str(server.pid))
        _ip("link", "set", host_end, "up")
        _ip("route", "add", f"{OUTSIDE_IP}/32", "dev", host_end)
        with open(f"/proc/sys/net/ipv4/conf/{host_end}/proxy_arp", "w") as knob:
            knob.write("1")  # answers the namespace's ARP for pod and node addresses
        _ip("link", "set", "lo", "up", pid=server.pid)
        _ip("addr", "add", f"{OUTSIDE_IP}/32", "dev", inner_end, pid=server.pid)
        _ip("link", "set", inner_end, "up", pid=server.pid)
        _ip("route", "add", "default", "dev", inner_end, pid=server.pid)
        route = subprocess.run(
            ["ip", "route", "get", OUTSIDE_IP], capture_output=True, text=True, check=True
        ).stdout
        assert f"dev {host_end}" in route, f"{OUTSIDE_IP} is not routed into the test namespace: {route}"
        yield 9
    finally:
        server.kill()
        server.wait()
        subprocess.run(["ip", "link", "del", host_end], capture_output=True, check=False)


def _connects_from_host(port: int) -> bool:
    for _ in range(20):  # the listener may not be up yet
        try:
            with socket.create_connection((OUTSIDE_IP, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def test_a_pod_allowed_everything_still_cannot_leave_the_machine(core, k8s, outside_world):
    port = outside_world
    assert _connects_from_host(port), "the host itself cannot reach the stand-in outside world"
    with namespace(core, "guard") as ns:
        _deny_all(k8s, ns, egress=[client.V1NetworkPolicyEgressRule()])  # egress: [{}] allows all
        peer_ip = _peer(core, ns)
        script = "sleep 3; " + "; ".join(
            f"if nc -w 3 {host} {p} -e /bin/true </dev/null; then echo {name}=ok; "
            f"else echo {name}=blocked; fi"
            for name, host, p in [("peer", peer_ip, 9090), ("out", OUTSIDE_IP, port)]
        )
        _, out = run_to_completion(core, ns, toolbox_pod("free", script, labels={"isolated": "yes"}))
    results = dict(line.split("=", 1) for line in out.split() if "=" in line)
    assert results == {"peer": "ok", "out": "blocked"}, out
