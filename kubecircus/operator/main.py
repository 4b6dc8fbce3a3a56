"""``kubecircus operator``: metrics server, leader election, the scheduler loop, then kopf."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading

import kopf

from . import handlers, metrics
from .api import GROUP, VERSION
from .config import OperatorConfig
from .engine import Engine
from .informer import Caches
from .kube import Kube, load_api_client
from .leader import LeaderElector
from .storeops import StoreOps

log = logging.getLogger(__name__)


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
    elector = None
    kube = Kube(api)
    engine = Engine(kube, StoreOps(config), config)
    # the scheduler reads jobs and Plugins from these (a watch each), not a LIST per round
    caches = Caches(
        kube.custom, GROUP, VERSION, config.watched_namespaces, plugins_changed=lambda _: engine.wake.set()
    )
    kube.patched = caches.remember_job
    engine.caches = caches
    caches.start(stop)
    if config.leader_election:
        elector = LeaderElector(api, config.namespace, config.lease_name, config.identity)
        elector.wait_until_leader()
        engine.leading = elector.leading  # checked before every write the engine makes

        def leadership_changed(leading: bool) -> None:
            metrics.LEADER.set(1 if leading else 0)
            if leading:
                engine.wake.set()

        threading.Thread(
            target=elector.keep, args=(stop, leadership_changed), name="lease", daemon=True
        ).start()
    metrics.LEADER.set(1)
    metrics.HEALTH_CHECK = engine.health
    handlers.ENGINE = engine
    scheduler = threading.Thread(target=engine.run_scheduler, args=(stop,), name="scheduler", daemon=True)
    scheduler.start()
    try:
        namespaces = list(config.watched_namespaces)
        asyncio.run(
            kopf.operator(
                clusterwide=not namespaces, namespaces=namespaces, standalone=True, identity=config.identity
            )
        )
    finally:  # a clean exit: stop writing, let what is in flight land, then hand the lease over
        stop.set()
        if elector is not None:
            elector.stand_down()
        engine.wake.set()
        scheduler.join(timeout=30)
        if elector is not None and not scheduler.is_alive():
            elector.release()
