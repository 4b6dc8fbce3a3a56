"""The hostile test plug-in, run on this machine for the modes that are harmless here.

Why: the end-to-end isolation tests trust hostile.py to report what it did; these tests check
that it does (exit codes, exact bad bytes, file counts, network outcomes) without a cluster.
Only loopback sockets opened by the test are contacted, and name resolution is switched off
(HOSTILE_RESOLVE=""), since the host's resolver could send queries off this machine.
write-outside is never run here: as root it would really write to /etc and /usr.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

HOSTILE = Path(__file__).resolve().parents[2] / "plugins" / "hostile" / "hostile.py"


@pytest.fixture
def root(tmp_path) -> Path:
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    return tmp_path


def hostile(root: Path, *args: object, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "CIRCUS_DIR": str(root), "HOSTILE_RESOLVE": "", **env}
    return subprocess.run(
        [sys.executable, str(HOSTILE), *map(str, args)],
        env=environ,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )


def results(root: Path) -> dict:
    return json.loads((root / "out" / "results.json").read_text(encoding="utf-8"))["results"]


def test_exit_returns_the_status(root):
    done = hostile(root, "exit", 3)
    assert done.returncode == 3
    assert "exiting with status 3" in done.stdout


def test_usage_errors_exit_2(root):
    assert hostile(root).returncode == 2
    assert hostile(root, "no-such-mode").returncode == 2
    assert hostile(root, "exit", 256).returncode == 2
    assert hostile(root, "net", "no-port").returncode == 2


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("not-json", b'{"results": ['),
        ("not-utf8", b"\xff\xfe\xfd\xc3\x28 not utf-8\n"),
        ("schema", b'{"results": "not-an-object"}'),
        ("empty", b""),
    ],
)
def test_bad_results_writes_the_bad_bytes(root, kind, expected):
    done = hostile(root, "bad-results", kind)
    assert done.returncode == 0, done.stdout
    assert (root / "out" / "results.json").read_bytes() == expected


def test_bad_results_are_really_bad():
    with pytest.raises(UnicodeDecodeError):
        b"\xff\xfe\xfd\xc3\x28 not utf-8\n".decode("utf-8")
    assert not isinstance(json.loads(b'{"results": "not-an-object"}')["results"], dict)


def test_bomb_files(root):
    done = hostile(root, "bomb", "files", 50)
    assert done.returncode == 0, done.stdout
    files = [p for p in (root / "out").rglob("*") if p.is_file() and p.parent != root / "out"]
    assert len(files) == 50
    assert len({p.parent for p in files}) == 8
    assert results(root) == {"bomb": {"kind": "files", "amount": "50"}}


def test_bomb_bytes_is_sparse(root):
    done = hostile(root, "bomb", "bytes", 1)
    assert done.returncode == 0, done.stdout
    info = (root / "out" / "sparse.bin").stat()
    assert info.st_size == 1 << 30
    assert info.st_blocks * 512 < 1 << 20  # apparent size only


def test_bomb_deep(root):
    done = hostile(root, "bomb", "deep", 2500)  # deeper than PATH_MAX allows as one path
    assert done.returncode == 0, done.stdout
    fds = [os.open(root / "out" / "deep", os.O_RDONLY | os.O_DIRECTORY)]
    try:
        while "d" in os.listdir(fds[-1]):
            fds.append(os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fds[-1]))
        assert len(fds) - 1 == 2500
    finally:  # bottom up, iteratively: shutil.rmtree (pytest's cleanup) recurses once per level
        for parent, child in reversed(list(itertools.pairwise(fds))):
            os.close(child)
            os.rmdir("d", dir_fd=parent)
        os.close(fds[0])


def test_symlink_makes_links_a_directory_link_and_a_fifo(root):
    done = hostile(root, "symlink", "/proc/self/environ", "creds=/var/run/kubecircus/store/secretKey")
    assert done.returncode == 0, done.stdout
    out = root / "out"
    assert os.readlink(out / "results.json") == "/proc/self/environ"
    assert os.readlink(out / "creds") == "/var/run/kubecircus/store/secretKey"
    assert os.readlink(out / "dir") == "/var/run"
    assert (out / "pipe").is_fifo()


def test_oom_survives_a_small_amount(root):
    done = hostile(root, "oom", 32)
    assert done.returncode == 0, done.stdout
    assert "allocated 32 MiB of 32" in done.stdout
    assert results(root) == {"oom": {"allocatedMiB": 32}}


def test_sleep_ignores_sigterm(root):
    process = subprocess.Popen(
        [sys.executable, str(HOSTILE), "sleep", "2"],
        env={**os.environ, "CIRCUS_DIR": str(root)},
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    assert process.stdout is not None
    assert "sleeping" in process.stdout.readline() + process.stdout.readline()
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "got SIGTERM, ignoring it" in output and "woke up" in output


def free_port(kind: int) -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_net_reports_each_outcome(root):
    listener = socket.create_server(("127.0.0.1", 0))
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("127.0.0.1", 0))
    stop = threading.Event()

    def answer() -> None:  # any datagram in, one datagram out
        dns.settimeout(0.2)
        while not stop.is_set():
            try:
                data, peer = dns.recvfrom(512)
            except TimeoutError:
                continue
            dns.sendto(data[:2] + b"\x81\x80" + data[4:], peer)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    targets = {
        f"127.0.0.1:{listener.getsockname()[1]}": "connected",
        f"127.0.0.1:{free_port(socket.SOCK_STREAM)}": "refused",
        f"127.0.0.1:{dns.getsockname()[1]}/udp": "answered",
        f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}/udp": "refused",
    }
    try:
        started = time.monotonic()
        done = hostile(root, "net", *targets, HOSTILE_NET_ROUNDS="2")
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
        listener.close()
        dns.close()
    assert done.returncode == 0, done.stdout
    attempts = results(root)["attempts"]
    assert len(attempts) == 2 * len(targets)
    for attempt in attempts:
        assert attempt["outcome"] == targets[attempt["target"]], attempt
    assert {a["round"] for a in attempts} == {1, 2}
    assert 2.0 <= elapsed < 20  # the second round starts 2.5 s after the first
    assert "-> connected" in done.stdout
