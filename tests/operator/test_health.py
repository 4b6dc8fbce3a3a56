"""/healthz reports a stuck or dead scheduler loop (so the kubelet restarts the replica)."""

from __future__ import annotations

import urllib.error
import urllib.request

from kubecircus.operator import metrics
from kubecircus.operator.config import OperatorConfig
from kubecircus.operator.engine import Engine

from miniotest import free_port


def test_healthz_follows_the_scheduler_loop(monkeypatch):
    engine = Engine(kube=None, store=None, config=OperatorConfig(identity="t"))  # type: ignore[arg-type]
    monkeypatch.setattr(metrics, "HEALTH_CHECK", engine.health)
    port = free_port("127.0.0.1")
    server = metrics.serve(port)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        assert opener.open(f"http://127.0.0.1:{port}/healthz", timeout=5).read() == b"ok\n"
        engine._round_at -= 3600  # the loop last came round an hour ago
        try:
            opener.open(f"http://127.0.0.1:{port}/healthz", timeout=5)
            raise AssertionError("healthz still said ok")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503 and "scheduler loop" in exc.reason
    finally:
        server.shutdown()
