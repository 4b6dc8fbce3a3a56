"""``kubecircus operator``: metrics server, leader election, the scheduler loop, then kopf."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading

import kopf

from . import handlers, metrics
from .config import OperatorConfig
from .engine import Engine
from .kube import Kube, load_api_client
from .leader import RENEW_SECONDS, LeaderLease
from .storeops import StoreOps

log = logging.getLogger(__name__)


def _renew_forever(lease: LeaderLease, stop: threading.Event) -> None:
    while not stop.wait(RENEW_SECONDS):
        try:
            ok = lease.try_acquire()
        except Exception:
            ok = False
        if not ok:
            log.error("lost the leader lease: stopping so that only one replica operates")
            metrics.LEADER.set(0)
            stop.set()
            import os

            os._exit(1)  # the kubelet restarts us as a standby


def run(config: OperatorConfig | None = None) -> None:
    config = config or OperatorConfig.from_env()
    if not config.store_endpoint:
        raise SystemExit(
            "kubecircus operator: KUBECIRCUS_STORE_ENDPOINT is not set (the chart's objectStore values)"
        )
    if config.store_ca_file:
        with open(config.store_ca_file, encoding="ascii") as pem:
            config = dataclasses.replace(config, store_ca_pem=pem.read())
    metrics.serve(config.metrics_port)
    api = load_api_client()
    stop = threading.Event()
    lease = None
    if config.leader_election:
        lease = LeaderLease(api, config.namespace, config.lease_name, config.identity)
        lease.wait_until_leader()
        threading.Thread(target=_renew_forever, args=(lease, stop), name="lease", daemon=True).start()
    metrics.LEADER.set(1)
    engine = Engine(Kube(api), StoreOps(config), config)
    metrics.HEALTH_CHECK = engine.health
    handlers.ENGINE = engine
    threading.Thread(target=engine.run_scheduler, args=(stop,), name="scheduler", daemon=True).start()
    try:
        asyncio.run(kopf.operator(clusterwide=True, standalone=True, identity=config.identity))
    finally:
        stop.set()
        if lease is not None:
            lease.release()
