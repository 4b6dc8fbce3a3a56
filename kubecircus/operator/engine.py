"""The operator's work: reconcile one job, and the scheduler loop over all of them.

Both read fresh state from the API server, decide with the pure functions in ``decide.py`` and
``queue.py``, and apply the result. A per-job lock keeps two triggers (a pod event and the loop)
from reconciling the same job at once; the resourceVersion guard on every status patch keeps a
stale decision from ever being written.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import UTC, datetime

from . import metrics
from .actions import Action, PatchStatus
from .api import FINISHED_PHASES, Phase, PluginJob
from .config import OperatorConfig
from .decide import pending_resubmit, reconcile, transition
from .kube import Conflict, Kube
from .queue import expired, plan_queue

log = logging.getLogger(__name__)
#: Decide-apply rounds per reconcile: enough to go e.g. policy → pod in one call.
MAX_ROUNDS = 4


class Engine:
    def __init__(self, kube: Kube, config: OperatorConfig) -> None:
        self.kube = kube
        self.config = config
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.wake = threading.Event()

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def reconcile_job(self, namespace: str, name: str) -> None:
        with self._lock(f"{namespace}/{name}"):
            for _ in range(MAX_ROUNDS):
                body = self.kube.job(namespace, name)
                if body is None or body["metadata"].get("deletionTimestamp"):
                    return
                job = PluginJob.from_body(body)
                plugin = self.kube.plugin(job.spec.plugin)
                plan = reconcile(job, plugin, self.kube.children(job), self.config, datetime.now(UTC))
                if not plan.actions:
                    return
                try:
                    self.kube.apply(job, plan.actions)
                except Conflict as exc:
                    log.debug("conflict, deciding again: %s", exc)
                    continue
                self._observe_transitions(job, plan.actions)
                if any(
                    isinstance(a, PatchStatus) and a.patch.get("phase") == Phase.QUEUED.value
                    for a in plan.actions
                ):
                    self.wake.set()  # a newly queued job: let the scheduler look now

    def _observe_transitions(self, job: PluginJob, actions: list[Action]) -> None:
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
                    since = datetime.strptime(started, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
                    metrics.PHASE_SECONDS.labels(old).observe((datetime.now(UTC) - since).total_seconds())
            if new in {p.value for p in FINISHED_PHASES}:
                metrics.FINISHED.labels(new, action.patch.get("reason", "")).inc()

    def schedule_once(self) -> list[tuple[str, str]]:
        """Admit what fits, refresh queue positions, expire history; returns jobs to reconcile."""
        jobs = [PluginJob.from_body(b) for b in self.kube.all_jobs()]
        plugins = self.kube.plugins()
        plan = plan_queue(jobs, plugins, self.config.max_concurrent_jobs)
        now = datetime.now(UTC)
        for job in plan.admit:
            patch = transition(
                job,
                Phase.STAGING,
                now,
                "Admitted",
                "a slot is free; staging inputs",
                {"startTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "queuePosition": None, "launched": None},
            )
            try:
                self.kube.apply(job, [patch])
            except Conflict:
                continue  # the job changed (cancelled, suspended): the next round sees it
            self._observe_transitions(job, [patch])
        by_key = {j.key: j for j in jobs}
        admitted = {j.key for j in plan.admit}
        for key, position in plan.positions.items():
            if key in admitted:
                continue
            try:
                self.kube.apply(by_key[key], [PatchStatus({"queuePosition": position})])
            except Conflict:
                continue
        for job in expired(jobs, now, self.config.history_ttl_seconds, self.config.history_size):
            log.info("history: deleting finished job %s", job.key)
            self.kube.delete_job(job)
        counts = Counter(j.status.phase or "New" for j in jobs)
        for phase in [*[p.value for p in Phase], "New"]:
            metrics.JOBS.labels(phase).set(counts.get(phase, 0))
        metrics.QUEUE_LENGTH.set(
            sum(
                1
                for j in jobs
                if j.status.phase == Phase.QUEUED.value
                and not j.spec.suspend
                and not j.spec.cancel
                and j.key not in admitted
            )
        )
        return [
            (j.namespace, j.name)
            for j in jobs
            if j.key in admitted
            or j.status.phase not in {p.value for p in FINISHED_PHASES}
            or pending_resubmit(j) is not None
        ]

    def run_scheduler(self, stop: threading.Event) -> None:
        """The loop: every reconcile_interval, or sooner when woken by an event."""
        while not stop.is_set():
            try:
                for namespace, name in self.schedule_once():
                    self.reconcile_job(namespace, name)
            except Exception:  # the loop must survive API hiccups; the next round retries
                log.exception("scheduler round failed; retrying")
            self.wake.wait(self.config.reconcile_interval)
            self.wake.clear()
