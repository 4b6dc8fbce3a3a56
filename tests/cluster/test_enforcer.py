"""What the NetworkPolicy enforcer (kube-router, firewall only) and the node's own rules leave open.

1. A brand-new pod under a deny-all policy: kube-router writes its rules once it sees the pod's
   address (about half a second after the pod starts here), and would leave that moment
   unpoliced; a flow begun then lives on in connection tracking. The quarantine CNI plug-in
   (hack/cluster/cni/kubecircus-quarantine) drops a new pod's packets for its first seconds, in
   the raw table, before conntrack: the pod reaches nothing from its first instant, while an
   unpoliced twin connects once its quarantine is over (the control that keeps the test honest).
2. The guard that keeps pod traffic on this machine must hold even for a pod a policy allows
   everything (kube-router ACCEPTs policy-compliant traffic in filter FORWARD, so the guard lives
   in the mangle table), and for an address of the pod range that no pod holds. "Outside" is a
   network namespace this test creates on the machine, at a documentation address that no route
   of the machine names, routed only into it.
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

from kubecircus.operator import pods

from kubetest import deny_all, namespace, run_to_completion, tcp_peer, toolbox_pod, wait_for_pod

#: Documentation addresses (RFC 5737); the first that the machine's routes and neighbours do
#: not mention stands for the outside world.
CANDIDATES = ("198.51.100.77", "203.0.113.77", "192.0.2.77")
UNASSIGNED_POD_IP = "10.244.255.250"  # in the pod range, outside the node's 10.244.0.0/24
LISTENER = """
import socket
server = socket.create_server(("0.0.0.0", 9))  # before its namespace has the address
while True:
    server.accept()[0].close()
"""
log = logging.getLogger(__name__)


def _timeline_script(peer_ip: str, attempts: int) -> str:
    """Every ~0.1 s: '<seconds since start> ok|blocked' for a TCP connection to the peer."""
    return (
        "s=$(cut -d' ' -f1 /proc/uptime); i=0; "
        f"while [ $i -lt {attempts} ]; do t=$(cut -d' ' -f1 /proc/uptime); "
        f"if nc -w 1 {peer_ip} 9090 -e /bin/true </dev/null 2>/dev/null; then r=ok; else r=blocked; fi; "
        'echo "$(awk -v a=$s -v b=$t "BEGIN {print b - a}") $r"; i=$((i + 1)); sleep 0.1; done'
    )


def _timeline(out: str) -> list[tuple[float, str]]:
    return [(float(t), r) for t, r in (line.split() for line in out.splitlines() if line.strip())]


def test_a_new_pod_under_deny_all_reaches_nothing_from_its_first_instant(core, k8s):
    with namespace(core, "window") as ns:
        deny_all(k8s, ns)
        peer_ip = tcp_peer(core, ns)
        for name, isolated in (("newcomer", "yes"), ("twin", "no")):
            core.create_namespaced_pod(
                ns, toolbox_pod(name, _timeline_script(peer_ip, 40), labels={"isolated": isolated})
            )
        for name in ("newcomer", "twin"):
            wait_for_pod(core, ns, name, {"Succeeded", "Failed"})
        jailed = core.read_namespaced_pod_log("newcomer", ns)
        free = core.read_namespaced_pod_log("twin", ns)
    jailed_timeline, free_timeline = _timeline(jailed), _timeline(free)
    free_from = min((t for t, r in free_timeline if r == "ok"), default=None)
    log.warning(  # the measurements this test exists to show (pytest -rP prints them)
        "deny-all newcomer: %d of %d attempts connected (first second: %d); unpoliced twin: first "
        "connection at %s s (its quarantine)",
        sum(r == "ok" for _, r in jailed_timeline),
        len(jailed_timeline),
        sum(r == "ok" for t, r in jailed_timeline if t < 1.0),
        free_from,
    )
    assert len(jailed_timeline) == len(free_timeline) == 40, (jailed, free)
    assert free_from is not None, free  # the peer was reachable: "blocked" means something
    assert [t for t, r in jailed_timeline if r == "ok"] == [], jailed


def _reachable_from_the_node(address: str, port: int, timeout: float) -> None:
    """Until the node connects: the node's own packets meet the quarantine too (raw OUTPUT), so
    a new peer is then past its own."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((address, port), timeout=0.5).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"{address}:{port} never answered the node"
            time.sleep(0.2)


def test_a_pod_annotated_as_policy_free_skips_the_quarantine_and_its_twin_does_not(core):
    """The operator's stage and collect pods carry the exemption (kubecircus.operator.pods
    .NO_QUARANTINE): they reach the store from their first instant, not ~3 s later. The exempt
    pod's very first attempt must connect; its twin's first must not, unless the machine was so
    busy that the twin's container started after its 3 s were over (then the pair runs again)."""
    with namespace(core, "exempt") as ns:
        peer_ip = tcp_peer(core, ns)
        _reachable_from_the_node(peer_ip, 9090, 30)
        for round_ in range(3):
            for name, annotations in (
                (f"exempt-{round_}", {pods.NO_QUARANTINE: "true"}),
                (f"held-{round_}", {}),
            ):
                pod = toolbox_pod(name, _timeline_script(peer_ip, 30))
                pod.metadata.annotations = annotations
                core.create_namespaced_pod(ns, pod)
            timelines = {}
            for name in (f"exempt-{round_}", f"held-{round_}"):
                wait_for_pod(core, ns, name, {"Succeeded", "Failed"})
                timelines[name.split("-")[0]] = _timeline(core.read_namespaced_pod_log(name, ns))
            first = {k: min((t for t, r in v if r == "ok"), default=None) for k, v in timelines.items()}
            log.warning("round %d: first connection after the container's start: %s", round_, first)
            assert timelines["exempt"][0][1] == "ok", timelines["exempt"][:5]
            assert first["held"] is not None, timelines["held"]  # the peer answered it in the end
            if timelines["held"][0][1] == "blocked":
                return
    pytest.fail("the twin was never held: its containers started after its quarantine every time")


def _ip(*args: str, pid: int | None = None) -> None:
    prefix = ["nsenter", f"--net=/proc/{pid}/ns/net"] if pid else []
    subprocess.run([*prefix, "ip", *args], check=True, capture_output=True)


def _mentioned_by_the_machine(address: str) -> bool:
    shown = "".join(
        subprocess.run(["ip", *args], capture_output=True, text=True, encoding="utf-8", check=True).stdout
        for args in (["route", "show", "table", "all"], ["addr"], ["neigh"])
    )
    return address in shown.split() or f"{address}/" in shown


@pytest.fixture
def outside_world() -> Iterator[str]:
    """A listener at ADDRESS:9 inside a network namespace of its own; yields the address.

    The namespace belongs to the listener process (``unshare --net``, killed with its parent),
    never to ``ip netns``: that command turns /run/netns into a shared bind mount, after which
    containerd can no longer remove older pods' network namespaces. The address is one no route,
    address or neighbour of the machine mentions; its route points into the namespace and is
    checked, and while the test runs the mangle table drops anything to it that would leave by
    another interface: no packet of this test can reach the machine's real network.
    """
    if os.geteuid() != 0:
        pytest.fail("creating a test network namespace needs root (the local cluster does too)")
    address = next((a for a in CANDIDATES if not _mentioned_by_the_machine(a)), None)
    assert address, f"every candidate address {CANDIDATES} is in use on this machine"
    tag = f"{os.getpid() % 100000}"
    host_end, inner_end = f"kco{tag}h", f"kco{tag}n"
    safety = ["POSTROUTING", "-d", address, "!", "-o", host_end, "-j", "DROP"]
    subprocess.run(["iptables", "-w", "-t", "mangle", "-I", *safety], check=True)
    server = subprocess.Popen(
        ["setpriv", "--pdeathsig", "KILL", "unshare", "--net", sys.executable, "-c", LISTENER],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_own_namespace(server.pid)
        _ip("link", "add", host_end, "type", "veth", "peer", "name", inner_end, "netns", str(server.pid))
        _ip("link", "set", host_end, "up")
        _ip("route", "add", f"{address}/32", "dev", host_end)
        with open(f"/proc/sys/net/ipv4/conf/{host_end}/proxy_arp", "w", encoding="utf-8") as knob:
            knob.write("1")  # answers the namespace's ARP for pod and node addresses
        _ip("link", "set", "lo", "up", pid=server.pid)
        _ip("addr", "add", f"{address}/32", "dev", inner_end, pid=server.pid)
        _ip("link", "set", inner_end, "up", pid=server.pid)
        _ip("route", "add", "default", "dev", inner_end, pid=server.pid)
        route = subprocess.run(
            ["ip", "route", "get", address], capture_output=True, text=True, encoding="utf-8", check=True
        ).stdout
        assert f"dev {host_end}" in route, f"{address} is not routed into the test namespace: {route}"
        yield address
    finally:
        server.kill()
        server.wait()
        subprocess.run(["ip", "link", "del", host_end], capture_output=True, check=False)
        subprocess.run(["iptables", "-w", "-t", "mangle", "-D", *safety], capture_output=True, check=False)


def _wait_for_own_namespace(pid: int) -> None:
    """setpriv and unshare exec in turn under one pid: until unshare has run, the pid is still in
    this namespace, and a veth end moved "into" it would stay here."""
    ours = os.readlink("/proc/self/ns/net")
    deadline = time.monotonic() + 10
    while os.readlink(f"/proc/{pid}/ns/net") == ours:
        assert time.monotonic() < deadline, "the listener never got a network namespace of its own"
        time.sleep(0.05)


def _connects_from_host(address: str) -> bool:
    for _ in range(20):  # the listener may not be up yet
        try:
            with socket.create_connection((address, 9), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def test_a_pod_allowed_everything_still_cannot_leave_the_machine(core, k8s, outside_world):
    address = outside_world
    assert _connects_from_host(address), "the host itself cannot reach the stand-in outside world"
    with namespace(core, "guard") as ns:
        deny_all(k8s, ns, egress=[client.V1NetworkPolicyEgressRule()])  # egress: [{}] allows all
        peer_ip = tcp_peer(core, ns)
        script = "sleep 3; " + "; ".join(
            f"if nc -w 3 {host} {port} -e /bin/true </dev/null; then echo {name}=ok; "
            f"else echo {name}=blocked; fi"
            for name, host, port in [
                ("peer", peer_ip, 9090),
                ("out", address, 9),
                ("unassigned", UNASSIGNED_POD_IP, 9),
            ]
        )
        _, out = run_to_completion(core, ns, toolbox_pod("free", script, labels={"isolated": "yes"}))
    results = dict(line.split("=", 1) for line in out.split() if "=" in line)
    assert results == {"peer": "ok", "out": "blocked", "unassigned": "blocked"}, out
    route = subprocess.run(
        ["ip", "route", "get", UNASSIGNED_POD_IP],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )
    assert route.returncode != 0 or "blackhole" in route.stdout + route.stderr, route  # goes nowhere
