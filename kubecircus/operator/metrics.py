"""Prometheus metrics and the /metrics + /healthz endpoint (served before leadership too)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from kubecircus.timestamps import parse

from .actions import Action, PatchStatus
from .api import FINISHED_PHASES, PluginJob

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
JOBS = Gauge("kubecircus_jobs", "PluginJobs by phase.", ["phase"], registry=REGISTRY)
QUEUE_LENGTH = Gauge(
    "kubecircus_queue_length", "Queued jobs waiting for a slot (not suspended).", registry=REGISTRY
)
PHASE_SECONDS = Histogram(
    "kubecircus_phase_duration_seconds",
    "Time jobs spent in a phase.",
    ["phase"],
    registry=REGISTRY,
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 10800),
)
FINISHED = Counter(
    "kubecircus_jobs_finished_total",
    "Jobs that reached a final phase.",
    ["phase", "reason"],
    registry=REGISTRY,
)
LEADER = Gauge("kubecircus_leader", "1 while this replica holds the leader lease.", registry=REGISTRY)
#: What /healthz asks: None when healthy, else what is wrong (the leader's scheduler loop sets it).
HEALTH_CHECK: Callable[[], str | None] = lambda: None  # noqa: E731


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/metrics":
            body, kind = generate_latest(REGISTRY), CONTENT_TYPE_LATEST
        elif self.path == "/healthz":
            problem = HEALTH_CHECK()
            if problem:  # the kubelet restarts a replica whose scheduler loop is stuck or dead
                self.send_error(503, problem)
                return
            body, kind = b"ok\n", "text/plain"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:  # probes every few seconds: keep the log quiet
        return


def serve(port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("0.0.0.0", port), _Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("serving /metrics and /healthz on :%d", port)
    return server


def record_transitions(job: PluginJob, actions: list[Action]) -> None:
    """Phase durations and finished jobs, from the status patches a plan wrote."""
    for action in actions:
        if not isinstance(action, PatchStatus) or "phase" not in action.patch:
            continue
        new = action.patch["phase"]
        old = job.status.phase
        if old and old != new:
            started = next(
                (
                    c.last_transition_time
                    for c in reversed(job.status.conditions)
                    if c.type == old and c.last_transition_time
                ),
                None,
            )
            if started:
                since = parse(started)
                PHASE_SECONDS.labels(old).observe((datetime.now(UTC) - since).total_seconds())
        if new in {p.value for p in FINISHED_PHASES}:
            FINISHED.labels(new, action.patch.get("reason", "")).inc()
