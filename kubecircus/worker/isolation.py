"""The isolation proof: from inside the plug-in pod, every door must be closed.

``prepare`` tries, all at once and with short timeouts, the object store, the API server, the
kubelet on the node, the cluster's DNS servers (UDP and TCP, from ``/etc/resolv.conf``: no
cluster domain is assumed) and another pod (the operator). A door is *closed* when the attempt
times out or is refused or unreachable (a REJECT rule answers with an ICMP error; every target is
a listening port, so a refusal can only come from a filter). It is *open* when a TCP handshake
completes or any DNS answer arrives — even NXDOMAIN or REFUSED proves packets got through. An
attempt that cannot be made at all counts as open: the proof must never pass by accident.

NetworkPolicy enforcers apply rules asynchronously, both ways: some let a new pod talk until its
deny rules are in place (doors open, then close), others drop everything from a pod they do not
know yet (doors closed, then opened by whatever allow policy matches the pod once it is known).
So the proof passes only after every door has stayed closed for ``settle`` seconds in a row (an
open round starts the count again), and gives up after the wait: a door open in the last round
means the plug-in does not start (``IsolationBreach``). A door that was open in an earlier round
and closed since is no proof either: connections made while it was open may live on in the
node's connection tracking (an enforcer accepts ESTABLISHED traffic before its policies), so
:attr:`Proof.opened` names it and ``prepare`` has the attempt retried in a new pod.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CLOSED_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT, errno.EACCES, errno.EPERM}
)


@dataclass(frozen=True)
class Target:
    name: str
    host: str
    port: int
    udp_dns: bool = False

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.name} {host}:{self.port}{'/udp' if self.udp_dns else ''}"


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port``."""
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"not host:port: {text!r}")
    return host.strip("[]"), int(port)


def nameservers(resolv_conf: str) -> list[str]:
    servers = []
    for line in resolv_conf.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            servers.append(fields[1].split("%")[0])
    return servers


def targets(probes: list[dict[str, str]], environ: dict[str, str], resolv_conf: str) -> list[Target]:
    """What to try: the operator's list, the API server and node from the pod's environment,
    every DNS server the pod is configured with."""
    found = [Target(p["name"], *parse_address(p["address"])) for p in probes]
    if environ.get("KUBERNETES_SERVICE_HOST"):
        found.append(
            Target(
                "api-server",
                environ["KUBERNETES_SERVICE_HOST"],
                int(environ.get("KUBERNETES_SERVICE_PORT", 443)),
            )
        )
    if environ.get("HOST_IP"):
        found.append(Target("kubelet", environ["HOST_IP"], 10250))
    for server in nameservers(resolv_conf):
        found.append(Target("dns", server, 53, udp_dns=True))
        found.append(Target("dns", server, 53))
    unique: dict[tuple[str, int, bool], Target] = {}
    for target in found:
        unique.setdefault((target.host, target.port, target.udp_dns), target)
    return list(unique.values())


def dns_query(name: str = "kubernetes.default") -> bytes:
    """A minimal DNS query (A record, recursion desired) for ``name``."""
    header = struct.pack(">HHHHHH", 0x6B63, 0x0100, 1, 0, 0, 0)
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    return header + question + struct.pack(">HH", 1, 1)


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def try_door(target: Target, timeout: float) -> str:
    """``closed``, ``open: ...`` or ``open: could not probe: ...`` (which counts as open)."""
    try:
        if target.udp_dns:
            with socket.socket(_family(target.host), socket.SOCK_DGRAM) as sock:
                sock.settimeout(timeout)
                sock.connect((target.host, target.port))
                sock.send(dns_query())
                data = sock.recv(512)
                return f"open: {len(data)}-byte DNS answer"
        with socket.socket(_family(target.host), socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect((target.host, target.port))
            return "open: connected"
    except TimeoutError:
        return "closed"
    except OSError as exc:
        if exc.errno in CLOSED_ERRNOS:
            return "closed"
        return f"open: could not probe: {exc}"
    except Exception as exc:  # never pass by accident
        return f"open: could not probe: {type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Proof:
    isolated: bool
    rounds: int
    seconds: float
    open_doors: list[str]
    tried: int
    #: Doors seen open in an earlier round (when, in seconds), even if closed at the end.
    opened: tuple[str, ...] = ()


def prove(doors: list[Target], timeout: float, wait: float, settle: float = 0.0) -> Proof:
    """Round after round until every door has stayed closed for ``settle`` seconds in a row, or
    ``wait`` seconds have passed (each round tries every door at once)."""
    if not doors:
        return Proof(False, 0, 0.0, ["nothing to probe: the proof cannot pass without targets"], 0)
    started = time.monotonic()
    rounds = 0
    open_doors: list[str] = []
    opened: dict[str, float] = {}  # door -> when it was first seen open
    closed_since: float | None = None
    with ThreadPoolExecutor(len(doors), thread_name_prefix="probe") as pool:
        while True:
            rounds += 1
            began = time.monotonic()
            outcomes = list(pool.map(lambda t: try_door(t, timeout), doors))
            open_doors = [f"{t}: {o}" for t, o in zip(doors, outcomes, strict=True) if o != "closed"]
            now = time.monotonic()
            elapsed = now - started
            if open_doors:
                closed_since = None
                for door in open_doors:
                    opened.setdefault(door, round(began - started, 2))
                log.info("round %d: %s", rounds, "; ".join(open_doors))
                if elapsed + timeout > max(wait, settle):
                    return Proof(False, rounds, round(elapsed, 2), open_doors, len(doors), _seen(opened))
            else:
                closed_since = began if closed_since is None else closed_since
                if now - closed_since >= settle:
                    return Proof(True, rounds, round(elapsed, 2), [], len(doors), _seen(opened))
            time.sleep(min(0.25, timeout))


def _seen(opened: dict[str, float]) -> tuple[str, ...]:
    return tuple(f"{door} (at {at} s)" for door, at in opened.items())


def resolv_conf(path: str = "/etc/resolv.conf") -> str:
    return Path(path).read_text(encoding="utf-8") if os.path.exists(path) else ""
