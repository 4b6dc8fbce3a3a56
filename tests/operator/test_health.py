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


class Untouchable:
    """A stand-in for the API server and the store that fails the test if anything is asked."""

    def __init__(self, asked: list[str]) -> None:
        self.__dict__["asked"] = asked

    def __getattr__(self, name: str):
        self.asked.append(name)  # the scheduler loop swallows errors: count them too
        raise AssertionError(f"a replica that does not lead used {name}")


def test_a_replica_that_does_not_lead_writes_nothing():
    import threading

    import pytest

    from kubecircus.operator.actions import PatchStatus
    from kubecircus.operator.engine import NotLeading

    from jobbuilders import JobBuilder

    asked: list[str] = []
    engine = Engine(kube=Untouchable(asked), store=Untouchable(asked), config=OperatorConfig(identity="t"))  # type: ignore[arg-type]
    engine.leading = lambda: False
    with pytest.raises(NotLeading):
        engine._apply(JobBuilder().build(), [PatchStatus({"phase": "Staging"})])
    engine.sweep_cache()  # no sweep either
    stop = threading.Event()
    engine.wake.set()
    loop = threading.Thread(target=engine.run_scheduler, args=(stop,))
    loop.start()
    stop.set()
    engine.wake.set()
    loop.join(timeout=10)
    assert not loop.is_alive() and asked == []
