"""A real MinIO server process for tests (the binary `make cluster-up` builds from its Go module).

It can be stopped and started again on the same port and data folder, so tests can take the
object store away and bring it back. A test that cannot find the binary fails and says how to
get it (it never skips silently).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from kubetest import CACHE_BIN

MINIO = CACHE_BIN / "minio"
ROOT_USER, ROOT_PASSWORD = "kubecircus-root", "kubecircus-root-secret"


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class MinioServer:
    def __init__(self, data: Path, host: str = "127.0.0.1") -> None:
        assert MINIO.exists(), (
            f"{MINIO} is missing: run `make cluster-up` (it builds MinIO from its Go module)"
        )
        self.data, self.host = data, host
        self.port = free_port(host)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 60) -> None:
        env = {
            **os.environ,
            "MINIO_ROOT_USER": ROOT_USER,
            "MINIO_ROOT_PASSWORD": ROOT_PASSWORD,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
        }
        self.process = subprocess.Popen(
            [str(MINIO), "server", "--quiet", "--address", self.endpoint, str(self.data)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        url = f"http://{self.endpoint}/minio/health/ready"
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
        deadline = time.monotonic() + timeout
        while True:
            try:
                with direct.open(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise AssertionError(f"MinIO did not become ready within {timeout} s") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
