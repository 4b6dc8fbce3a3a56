"""Hostile test plug-in: misbehaves on purpose so that end-to-end tests can prove kubecircus's isolation.

Why: a sandbox is only as good as the attacks it was tried against. One image, one mode per
attack: ``hostile.py MODE [ARGS...]`` (see README.md). Standard library only, so the image is the
bare Python base. Every mode says on stdout what it does.

Safety rules for this file: it contacts only the addresses given as arguments (nothing is
hard-coded) and names listed in HOSTILE_RESOLVE; writes outside ``$CIRCUS_DIR/out`` are removed
again when they succeed, and the one write to a kernel setting writes back its current value.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

ROOT = Path(os.environ.get("CIRCUS_DIR", "/circus"))
OUT = ROOT / "out"
MiB = 1 << 20
BAD_RESULTS = {
    "not-json": b'{"results": [',
    "not-utf8": b"\xff\xfe\xfd\xc3\x28 not utf-8\n",
    "schema": b'{"results": "not-an-object"}',
    "empty": b"",
}


def say(message: str) -> None:
    print(message, flush=True)  # noqa: T201 - stdout is the plug-in's log


def write_results(results: dict) -> None:
    (OUT / "results.json").write_text(json.dumps({"results": results}, indent=1) + "\n", encoding="utf-8")
    say(f"wrote {OUT / 'results.json'}")


def describe(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return f"{name} ({exc.strerror})"


# --- net ----------------------------------------------------------------------------------------


def dns_query(name: str) -> bytes:
    """A standard recursive A query for ``name``."""
    qname = b"".join(bytes([len(part)]) + part.encode() for part in name.split(".")) + b"\0"
    return os.urandom(2) + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + qname + b"\x00\x01\x00\x01"


def parse_target(text: str) -> tuple[str, int, str]:
    """HOST:PORT[/udp], HOST may be [IPv6]."""
    spec, _, proto = text.partition("/")
    host, sep, port = spec.rpartition(":")
    if not sep or not port.isdigit() or not host or proto not in ("", "tcp", "udp"):
        raise ValueError(f"bad target {text!r}: want HOST:PORT or HOST:PORT/udp")
    return host.strip("[]"), int(port), proto or "tcp"


def attempt(target: str, timeout: float) -> tuple[str, str]:
    """(outcome, detail) of one try: connected, answered, timeout, refused, unreachable, error: ..."""
    try:
        if target.startswith("resolve:"):
            infos = socket.getaddrinfo(target[8:], None, proto=socket.IPPROTO_TCP)
            return "answered", " ".join(sorted({i[4][0] for i in infos}))
        host, port, proto = parse_target(target)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
        with socket.socket(family, kind) as sock:
            sock.settimeout(timeout)
            sock.connect((host, port))
            if proto == "tcp":
                return "connected", ""
            sock.send(dns_query("kubernetes.default"))
            return "answered", f"{len(sock.recv(4096))} bytes"
    except TimeoutError:
        return "timeout", ""
    except ConnectionRefusedError:
        return "refused", ""
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            return "timeout", f"EAI_AGAIN ({exc.strerror})"
        return f"error: {exc.strerror}", ""
    except OSError as exc:
        if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "unreachable", describe(exc)
        return f"error: {describe(exc)}", ""


def net(targets: list[str]) -> int:
    """Try every target in parallel, a few rounds over ~5 s; report, never judge (exit 0).
    SIGTERM is ignored: a plug-in told to stop keeps trying, for as long as it is let."""
    signal.signal(signal.SIGTERM, lambda signum, frame: say("got SIGTERM, still probing"))
    for target in targets:
        parse_target(target)  # refuse a malformed list before contacting anything
    names = os.environ.get("HOSTILE_RESOLVE", "kubernetes.default example.com").split()
    rounds = int(os.environ.get("HOSTILE_NET_ROUNDS", "3"))
    timeout = float(os.environ.get("HOSTILE_NET_TIMEOUT", "2"))
    everything = targets + [f"resolve:{name}" for name in names]
    say(f"net: {len(everything)} target(s), {rounds} round(s), {timeout:g} s timeout: {' '.join(everything)}")
    attempts = []
    for number in range(1, rounds + 1):
        started = time.monotonic()
        outcomes: dict[str, tuple[str, str, float]] = {}

        def one(target: str, store=outcomes) -> None:
            begin = time.monotonic()
            outcome, detail = attempt(target, timeout)
            store[target] = (outcome, detail, time.monotonic() - begin)

        # Daemon threads: a resolver stuck past the timeout must not keep the process alive.
        threads = [threading.Thread(target=one, args=(t,), daemon=True) for t in everything]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, started + timeout + 1 - time.monotonic()))
        for target in everything:
            outcome, detail, seconds = outcomes.get(target, ("timeout", "no answer in time", timeout + 1))
            say(f"round {number}: {target} -> {outcome}{f' ({detail})' if detail else ''} in {seconds:.2f} s")
            record = {"round": number, "target": target, "outcome": outcome, "detail": detail}
            attempts.append({**record, "seconds": round(seconds, 3)})
        if number < rounds:
            time.sleep(max(0.0, started + 2.5 - time.monotonic()))
    write_results({"attempts": attempts})
    return 0


# --- filesystem ---------------------------------------------------------------------------------


def try_write(path: str) -> str:
    """Create ``path`` (then remove it again), or write a /proc/sys file's own value back."""
    try:
        if path.startswith("/proc/sys/"):
            current = Path(path).read_bytes()
            with open(path, "wb") as handle:  # same value: harmless even when it works
                handle.write(current)
            return "written"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, b"hostile\n")
        finally:
            os.close(fd)
        os.unlink(path)
        return "written"
    except OSError as exc:
        return f"refused: {describe(exc)}"


def write_outside(extra: list[str]) -> int:
    paths = [
        "/hostile",
        "/etc/hostile",
        str(ROOT / "in" / "hostile"),
        "/usr/hostile",
        "/var/run/secrets/hostile",
        "/proc/1/root/hostile",  # the root of pid 1: the host's, if the pid namespace were shared
        "/proc/sys/kernel/hostname",
        *extra,
    ]
    outcomes = []
    for path in paths:
        outcome = try_write(path)
        say(f"write {path} -> {outcome}")
        outcomes.append({"path": path, "outcome": outcome})
    write_results({"writes": outcomes})
    return 0


def symlinks(targets: list[str]) -> int:
    """Links (NAME=TARGET, or TARGET: the first becomes results.json), out/dir -> /var/run, a FIFO."""
    links = [("dir", "/var/run")]
    for number, arg in enumerate(targets):
        name, sep, target = arg.partition("=")
        links.append((name, target) if sep else ("results.json" if number == 0 else f"link-{number}", arg))
    for name, target in links:
        try:
            os.symlink(target, OUT / name)
            say(f"symlink out/{name} -> {target}")
        except OSError as exc:
            say(f"symlink out/{name} -> {target} failed: {describe(exc)}")
    os.mkfifo(OUT / "pipe")
    say("fifo out/pipe")
    return 0


def bad_results(kind: str) -> int:
    if kind not in BAD_RESULTS:
        raise ValueError(f"bad-results KIND is one of {', '.join(BAD_RESULTS)}")
    (OUT / "results.json").write_bytes(BAD_RESULTS[kind])
    say(f"wrote {kind} results.json: {BAD_RESULTS[kind][:40]!r}")
    return 0


def bomb(kind: str, amount: str) -> int:
    if kind == "files":
        count = int(amount)
        for i in range(count):
            folder = OUT / f"bomb-{i % 8}"
            folder.mkdir(exist_ok=True)
            (folder / f"f{i:07d}.txt").write_text(f"{i}\n")
        say(f"created {count} files under out/bomb-0..7")
    elif kind == "bytes":
        size = int(float(amount) * (1 << 30))
        with open(OUT / "sparse.bin", "wb") as handle:
            handle.truncate(size)
        say(f"created out/sparse.bin, apparent size {size} bytes")
    elif kind == "deep":
        depth = int(amount)
        (OUT / "deep").mkdir()
        fd = os.open(OUT / "deep", os.O_RDONLY | os.O_DIRECTORY)
        for _ in range(depth):  # relative to a directory fd: no PATH_MAX limit
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        os.close(fd)
        say(f"nested {depth} directories under out/deep")
    else:
        raise ValueError("bomb KIND is files N, bytes GiB or deep N")
    write_results({"bomb": {"kind": kind, "amount": amount}})
    return 0


# --- process ------------------------------------------------------------------------------------


def oom(mebibytes: str) -> int:
    total = int(mebibytes)
    chunks = []
    while len(chunks) * 16 < total:
        chunks.append(b"\x01" * (16 * MiB))  # filled, so every page is really touched
        say(f"allocated {len(chunks) * 16} MiB of {total}")
    say(f"survived with {len(chunks) * 16} MiB")
    write_results({"oom": {"allocatedMiB": len(chunks) * 16}})
    return 0


def sleep(seconds: str) -> int:
    signal.signal(signal.SIGTERM, lambda signum, frame: say("got SIGTERM, ignoring it"))
    deadline = time.monotonic() + float(seconds)
    say(f"sleeping {seconds} s, ignoring SIGTERM")
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 1.0))
    say("woke up")
    write_results({"slept": float(seconds)})
    return 0


def exit_with(code: str) -> int:
    status = int(code)
    if not 0 <= status <= 255:
        raise ValueError("an exit status is 0..255")
    say(f"exiting with status {status}")
    return status


MODES = {
    "net": (net, "HOST:PORT[/udp] ..."),
    "write-outside": (write_outside, "[EXTRA_PATH ...]"),
    "symlink": (symlinks, "[NAME=]TARGET ..."),
    "exit": (lambda args: exit_with(*args), "N"),
    "oom": (lambda args: oom(*args), "MiB"),
    "sleep": (lambda args: sleep(*args), "SECONDS"),
    "bad-results": (lambda args: bad_results(*args), "not-json|not-utf8|schema|empty"),
    "bomb": (lambda args: bomb(*args), "files N | bytes GiB | deep N"),
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in MODES:
        say("usage: hostile.py MODE [ARGS...]\n" + "\n".join(f"  {m} {u}" for m, (_, u) in MODES.items()))
        return 2
    mode, args = argv[0], argv[1:]
    say(f"hostile {mode} {' '.join(args)} (uid {os.getuid()}, out {OUT})")
    try:
        return MODES[mode][0](args)
    except (TypeError, ValueError) as exc:
        say(f"usage: hostile.py {mode} {MODES[mode][1]}: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
