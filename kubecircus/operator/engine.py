"""The operator's work: reconcile one job, and the scheduler loop over all of them.

Both read fresh state from the API server, decide with the pure functions in ``decide.py`` and
``queue.py``, and apply the result: Kubernetes actions through ``kube.py``, object-store actions
through ``storeops.py``. A per-job lock keeps two triggers (a pod event and the loop) from
reconciling the same job at once; the resourceVersion guard on every status and finalizer patch
keeps a stale decision from ever being written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import urllib3
from kubernetes.client.rest import ApiException

from kubecircus import progress
from kubecircus.objectstore.client import unavailable
from kubecircus.worker.report import decode

from . import metrics
from .actions import Action, DeleteObjects, MintCredentials, PatchStatus, SetFinalizer, StoreLog
from .api import FINISHED_PHASES, Phase, Plugin, PluginJob
from .config import OperatorConfig
from .decide import FINALIZER, admit, pending_resubmit, reconcile, refused
from .informer import Caches, newer
from .kube import Conflict, Kube, Refused
from .observe import Children
from .probes import probe_targets
from .queue import QueuePlan, expired, plan_queue
from .steps import unlaunched
from .storeops import StoreOps

log = logging.getLogger(__name__)
#: Phases whose arrival lets the scheduler admit at once: a new job, or a slot freed.
WAKING_PHASES = frozenset({Phase.QUEUED.value} | {p.value for p in FINISHED_PHASES})
#: Decide-apply rounds per reconcile: enough to go e.g. policy → pod in one call.
MAX_ROUNDS = 4


class NotLeading(Exception):
    """This replica does not hold the leader lease (any more): it writes nothing."""


class Engine:
    """Runs the decisions: ``reconcile_job`` for one job (from a kopf event or the loop), and
    ``run_scheduler``, the loop that admits, orders and expires jobs and reconciles the active
    ones every ``reconcile_interval``. It writes only while ``leading()`` says so (the leader
    election's gate), and judges every error in one place (``reconcile_safely``)."""

    def __init__(self, kube: Kube, store: StoreOps, config: OperatorConfig) -> None:
        self.kube = kube
        self.store = store
        self.config = config
        self._locks: dict[str, list] = {}  # key -> [lock, holders and waiters]
        self._guard = threading.Lock()
        self._probes_at = 0.0
        self._swept_at = 0.0
        self._round_at = time.monotonic()
        self._active_swept_at = 0.0
        self.wake = threading.Event()
        #: The informers the scheduler reads jobs and Plugins from; a LIST each round until
        #: they are in sync (or when there are none, as in a one-shot tool).
        self.caches: Caches | None = None
        self._progress_read: dict[str, float] = {}  # job uid -> when its log tail was last read
        #: Whether this replica may act; leader election replaces it (``leader.LeaderElector``).
        self.leading: Callable[[], bool] = lambda: True

    def health(self) -> str | None:
        """None while the scheduler loop comes round; else why this replica is unhealthy."""
        quiet = time.monotonic() - self._round_at
        limit = max(60.0, 10 * self.config.reconcile_interval)
        return f"the scheduler loop has not come round for {quiet:.0f} s" if quiet > limit else None

    def _current_config(self) -> OperatorConfig:
        """The config with the isolation proof's doors, resolved now and then (I/O at the edge)."""
        if time.monotonic() - self._probes_at > 60:
            self.config = dataclasses.replace(self.config, probes=tuple(probe_targets(self.config)))
            self._probes_at = time.monotonic()
        return self.config

    @contextlib.contextmanager
    def _job_lock(self, key: str) -> Iterator[None]:
        """One reconcile per job at a time. Locks live only while someone holds or waits for
        them: keys come from events (a pod's annotation), and must not pile up in memory."""
        with self._guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[key]

    def reconcile_job(self, namespace: str, name: str, seen: dict | None = None) -> None:
        """Decide and act for one job until nothing is left to do (or MAX_ROUNDS). ``seen`` is
        the body an event brought: a round decides on it or on the informer's copy (which holds
        what our own writes answered), whichever is newer, without a read; only a round after
        a Conflict, or without an informer, reads the job from the API server."""
        with self._job_lock(f"{namespace}/{name}"):
            stale = False
            for _ in range(MAX_ROUNDS):
                # after our own write the informer holds its answer; after a Conflict, read
                body = None if stale else self._known(namespace, name, seen)
                body = body or self.kube.job(namespace, name)
                seen, stale = None, False
                if body is None:
                    return
                job = PluginJob.from_body(body)
                if job.metadata.get("deletionTimestamp") and FINALIZER not in job.metadata.get(
                    "finalizers", []
                ):
                    return
                # an admitted job runs its snapshot: no need to read the Plugin again
                plugin = None if job.status.plugin_spec else self._plugin(job.spec.plugin)
                config = self._current_config()
                # a job never acted on (no status, no finalizer) has no children to list yet
                fresh = not job.status.phase and FINALIZER not in job.metadata.get("finalizers", [])
                children = Children() if fresh else self._observe(job, config)
                plan = reconcile(job, plugin, children, config, datetime.now(UTC))
                if not plan.actions:
                    return
                try:
                    try:
                        self._apply(job, plan.actions)
                    except Refused as refusal:
                        log.warning("%s: %s", job.key, refusal)
                        move = unlaunched(plan.actions)
                        if move:  # the next step's child was refused: the move first, judged there
                            self._apply(job, move)
                            metrics.record_transitions(job, move)
                            stale = True
                            continue
                        plan = refused(
                            job,
                            plugin,
                            children,
                            config,
                            datetime.now(UTC),
                            refusal.kind,
                            refusal.message,
                            refusal.name_conflict,
                        )
                        self._apply(job, plan.actions)
                except Conflict as exc:
                    log.debug("conflict, deciding again: %s", exc)
                    stale = True
                    continue
                metrics.record_transitions(job, plan.actions)
                if any(
                    isinstance(a, PatchStatus) and a.patch.get("phase") in WAKING_PHASES for a in plan.actions
                ):
                    self.wake.set()  # a job queued, or a slot freed: let the scheduler look now

    def _synced_caches(self) -> Caches | None:
        """The informers, when they may be trusted (listed, and heard from lately)."""
        return self.caches if self.caches is not None and self.caches.synced else None

    def _known(self, namespace: str, name: str, seen: dict | None) -> dict | None:
        """The newest body at hand without a read: the event's or the informer's."""
        caches = self._synced_caches()
        cached = caches.job(namespace, name) if caches is not None else None
        if seen is None or cached is None:
            return seen or cached
        return (
            cached
            if newer(cached["metadata"].get("resourceVersion"), seen["metadata"].get("resourceVersion"))
            else seen
        )

    def _plugin(self, name: str) -> Plugin | None:
        """The Plugin from the informer; read from the API when the informer has not seen it (it
        may lag a Plugin registered a moment ago: never fail a job PluginNotFound on that)."""
        caches = self._synced_caches()
        body = caches.plugin(name) if caches is not None else None
        return Plugin.from_body(body) if body is not None else self.kube.plugin(name)

    def reconcile_safely(self, namespace: str, name: str, seen: dict | None = None) -> None:
        """The one place where errors from a reconcile are judged.

        API, network and object-store outages are logged and left to the next round (the
        scheduler loop reconciles every unfinished job each ``reconcile_interval``); anything
        else is a bug, logged with its traceback — and still never stops the other jobs.
        """
        try:
            self.reconcile_job(namespace, name, seen)
        except NotLeading as exc:
            log.info("%s", exc)
        except Exception as exc:
            if isinstance(exc, ApiException | urllib3.exceptions.HTTPError) or unavailable(exc):
                log.warning("reconciling %s/%s failed (%s); the next round retries", namespace, name, exc)
            else:
                log.exception("reconciling %s/%s failed", namespace, name)

    def _observe(self, job: PluginJob, config: OperatorConfig) -> Children:
        children = self.kube.children(job)
        run = children.pods.get("run")
        if job.status.phase == Phase.RUNNING.value and run is not None and run.phase == "Running":
            children = dataclasses.replace(children, plugin_progress=self._plugin_progress(job, run.name))
        collect = children.pods.get("collect")
        if job.status.phase == Phase.COLLECTING.value and collect is not None and collect.completed:
            container = collect.container("collect")
            report = decode("collect", container.exit_code, container.message) if container else None
            size = report.details.get("resultsBytes") if report and report.ok else None
            if isinstance(size, int) and size <= config.max_inline_results_bytes:
                try:
                    results = self.store.results(job.namespace, job.uid, config.max_inline_results_bytes)
                except Exception as exc:  # inline results are a convenience: the job goes on
                    log.warning("%s: results.json not read for the status (%s)", job.key, exc)
                    results = None
                children = dataclasses.replace(children, results=results)
        return children

    def _plugin_progress(self, job: PluginJob, pod: str) -> float | None:
        """The plug-in's latest progress line: a bounded tail of its log, read at most every
        ``progress_interval`` seconds per job (never the whole log, never on every event)."""
        now = time.monotonic()
        if now - self._progress_read.get(job.uid, 0.0) < self.config.progress_interval:
            return None
        if len(self._progress_read) > 1000:  # forget jobs that stopped running long ago
            self._progress_read = {k: t for k, t in self._progress_read.items() if now - t < 3600}
        self._progress_read[job.uid] = now
        tail = self.kube.log(
            job.namespace, pod, "plugin", limit_bytes=progress.TAIL_BYTES, tail_lines=progress.TAIL_LINES
        )
        return progress.latest(tail) if tail else None

    def _apply(self, job: PluginJob, actions: list[Action]) -> None:
        version = job.metadata.get("resourceVersion")
        for action in actions:
            if not self.leading():  # checked before each write: a lost lease stops mid-plan
                raise NotLeading(f"not the leader: {job.key} is left to the replica that is")
            if isinstance(action, MintCredentials):
                data = self.store.mint(action.policy, action.seconds, f"{job.namespace}.{job.name}")
                self.kube.replace_secret(action.manifest, data)
            elif isinstance(action, StoreLog):
                cap = self.config.max_log_bytes
                text = self.kube.log(job.namespace, action.pod, "plugin", limit_bytes=cap + 1)
                self.store.put_log(action.key, text, cap)
            elif isinstance(action, DeleteObjects):
                self.store.delete_prefix(action.prefix)
            elif isinstance(action, SetFinalizer):
                version = self.kube.set_finalizer(job, FINALIZER, action.present, version)
            else:
                version = self.kube.apply(job, action, version)

    def sweep_cache(self) -> None:
        """Expire cached volumes every cache_sweep_seconds (errors wait for the next sweep)."""
        if time.monotonic() - self._swept_at < self.config.cache_sweep_seconds or not self.leading():
            return
        self._swept_at = time.monotonic()
        try:
            self.store.sweep_cache(datetime.now(UTC))
        except Exception as exc:
            log.warning("cache sweep failed (%s); trying again in %d s", exc, self.config.cache_sweep_seconds)

    def _listing(self) -> tuple[list[PluginJob], dict[str, Plugin], bool]:
        """Every job and Plugin, and whether they came from the informers (once those are in
        sync) rather than one LIST each."""
        caches = self._synced_caches()
        if caches is None:
            return self._list_jobs(), self.kube.plugins(), False
        plugins = {p["metadata"]["name"]: Plugin.from_body(p) for p in caches.plugins()}
        return [PluginJob.from_body(b) for b in caches.jobs()], plugins, True

    def _list_jobs(self) -> list[PluginJob]:
        return [PluginJob.from_body(b) for b in self.kube.all_jobs(self.config.watched_namespaces)]

    def _plan(self, jobs: list[PluginJob], plugins: dict[str, Plugin]) -> QueuePlan:
        config = self.config
        return plan_queue(
            jobs, plugins, config.max_concurrent_jobs, config.priority_cap, config.queue_positions_shown
        )

    def schedule_once(self, sweep: bool = True) -> list[tuple[str, str]]:
        """Admit what fits, refresh queue positions, expire history; returns jobs to reconcile:
        the ones just admitted, and (when ``sweep``) every job with work in flight, the safety
        net behind their own events and the clock for their deadlines."""
        jobs, plugins, cached = self._listing()
        plan = self._plan(jobs, plugins)
        if plan.admit and cached:
            # the limits span jobs, and a per-job resourceVersion guard cannot see another job's
            # state: an admission is decided on one fresh LIST, never on the cache alone. Only a
            # round that would admit pays for it; waiting jobs and full slots cost nothing.
            try:
                jobs = self._list_jobs()
                plan = self._plan(jobs, plugins)
            except (ApiException, urllib3.exceptions.HTTPError) as exc:
                log.warning("no admission this round: listing the jobs failed (%s)", exc)
                plan = dataclasses.replace(plan, admit=[])  # the sweep below still goes on
        now = datetime.now(UTC)
        for job in plan.admit:
            patch = admit(job, plugins[job.spec.plugin], now)
            try:
                self._apply(job, [patch])
            except Conflict:
                continue  # the job changed (cancelled, suspended): the next round sees it
            metrics.record_transitions(job, [patch])
        by_key = {j.key: j for j in jobs}
        admitted = {j.key for j in plan.admit}
        for key, position in plan.positions.items():
            if key in admitted:
                continue
            try:
                self._apply(by_key[key], [PatchStatus({"queuePosition": position})])
            except Conflict:
                continue
        present = [j for j in jobs if not j.metadata.get("deletionTimestamp")]
        for job in expired(present, now, self.config.history_ttl_seconds, self.config.history_size):
            if not self.leading():
                raise NotLeading("not the leader: history is left to the replica that is")
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
        due = []
        for job in jobs:
            if job.key in admitted:
                due.append((job.namespace, job.name))
            elif waiting(job):
                if sweep:
                    self._settle_queued(job, plugins.get(job.spec.plugin), now)
            elif sweep and (
                job.status.phase not in {p.value for p in FINISHED_PHASES}
                or pending_resubmit(job) is not None
                or job.metadata.get("deletionTimestamp")
            ):
                due.append((job.namespace, job.name))
        return due

    def _settle_queued(self, job: PluginJob, plugin: Plugin | None, now: datetime) -> None:
        """A waiting job is decided from the listing alone (it has no children yet): a thousand
        parked jobs cost the scheduler round no API call each, only those whose inputs or
        Plugin became impossible get a write."""
        plan = reconcile(job, plugin, Children(), self.config, now)
        if plan.actions:
            try:
                self._apply(job, plan.actions)
                metrics.record_transitions(job, plan.actions)
            except Conflict:
                pass  # the job changed: its own event, or the next round, decides again

    def run_scheduler(self, stop: threading.Event) -> None:
        """The loop: a round whenever woken (a job queued, a slot freed, a Plugin changed) and
        at least every reconcile_interval. Only that interval's round reconciles the jobs in
        flight: a woken round reads the informers' cache (and one LIST only when it admits), so
        a burst of submissions costs the API server the status writes it needs, little more."""
        while not stop.is_set():
            sweep = time.monotonic() - self._active_swept_at >= self.config.reconcile_interval
            try:
                due = self.schedule_once(sweep) if self.leading() else []
            except NotLeading:
                due = []
            except Exception:  # the loop must survive API hiccups; the next round retries
                log.exception("scheduler round failed; retrying")
                due = []
            for namespace, name in due:  # one job's trouble never holds up the others
                self.reconcile_safely(namespace, name)
                self._round_at = time.monotonic()  # progress, however many jobs there are
            if sweep:  # stamped when done: a long sweep is followed by a full interval's rest
                self._active_swept_at = time.monotonic()
            self.sweep_cache()
            self._round_at = time.monotonic()
            next_sweep = self._active_swept_at + self.config.reconcile_interval - time.monotonic()
            self.wake.wait(max(0.0, next_sweep))
            self.wake.clear()


def waiting(job: PluginJob) -> bool:
    """Queued and staying so: nothing to create, nothing to clean up (the scheduler admits or
    refuses it from the listing alone)."""
    return (
        job.status.phase == Phase.QUEUED.value
        and not job.spec.cancel
        and not job.metadata.get("deletionTimestamp")
        and pending_resubmit(job) is None
    )
