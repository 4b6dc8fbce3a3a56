"""The queue: which Queued jobs to admit, their queue positions, and which finished jobs expire.

Pure functions over a snapshot of every PluginJob (the operator's informer cache; every write
it leads to is guarded by the resourceVersion it was decided on, so a stale snapshot costs a
retry, never a wrong admission). Order: priority (higher first),
then the time the job entered the queue (``status.queuedAt``, stamped at submit and resubmit),
then name. A job whose plug-in is at its own ``maxConcurrent`` waits without blocking jobs of
other plug-ins behind it; the global ``maxConcurrentJobs`` is never exceeded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kubecircus.timestamps import stamp

from .api import ACTIVE_PHASES, FINISHED_PHASES, Phase, Plugin, PluginJob


@dataclass
class QueuePlan:
    admit: list[PluginJob] = field(default_factory=list)
    #: job key → new queuePosition (None clears it), only where it changes.
    positions: dict[str, int | None] = field(default_factory=dict)


def order_key(job: PluginJob, cap: Callable[[str], int] | None = None) -> tuple[int, str, str]:
    """Priority (capped for its namespace), then when it entered the queue, then name. A
    resubmitted job does not keep its old creation time's place in front of jobs that waited."""
    priority = job.spec.priority if cap is None else min(job.spec.priority, cap(job.namespace))
    return (-priority, job.status.queued_at or job.created, job.key)


def plan_queue(
    jobs: list[PluginJob],
    plugins: dict[str, Plugin],
    max_concurrent_jobs: int,
    priority_cap: Callable[[str], int] | None = None,
    positions_shown: int = 20,
) -> QueuePlan:
    """Which waiting jobs to admit now, and the queue positions to write. Positions are kept
    only for the first ``positions_shown`` waiting jobs (behind them ``queuePosition`` is unset
    and the job is simply "waiting"), and a shown position is rewritten only when the job has
    moved at least halfway to the front (``_set_position``): a job costs at most
    log2(positions_shown) + 2 position writes over its wait, however long the queue, where
    rewriting every move would cost one write per admission ahead of it."""
    active = [j for j in jobs if j.status.phase in {p.value for p in ACTIVE_PHASES}]
    running_total = len(active)
    running_per_plugin = Counter(j.spec.plugin for j in active)
    waiting = sorted(
        (j for j in jobs if j.status.phase == Phase.QUEUED.value and not j.spec.cancel),
        key=lambda job: order_key(job, priority_cap),
    )
    plan = QueuePlan()
    position = 0
    for job in waiting:
        if job.spec.suspend:
            _set_position(plan, job, None)
            continue
        plugin = plugins.get(job.spec.plugin)
        plugin_limit = plugin.spec.max_concurrent if plugin else None
        fits_global = running_total < max_concurrent_jobs
        fits_plugin = plugin_limit is None or running_per_plugin[job.spec.plugin] < plugin_limit
        if plugin is not None and fits_global and fits_plugin:
            plan.admit.append(job)
            running_total += 1
            running_per_plugin[job.spec.plugin] += 1
            _set_position(plan, job, None)
            continue
        position += 1
        _set_position(plan, job, position if position <= positions_shown else None)
    for job in jobs:  # positions left over on jobs that no longer wait
        if job.status.queue_position is not None and job.status.phase != Phase.QUEUED.value:
            plan.positions[job.key] = None
    return plan


def _set_position(plan: QueuePlan, job: PluginJob, position: int | None) -> None:
    if shown_position_moves(job.status.queue_position, position):
        plan.positions[job.key] = position


def shown_position_moves(shown: int | None, position: int | None) -> bool:
    """Whether the written ``queuePosition`` (``shown``) is rewritten for the true ``position``.

    The shown number is never below the true one (a job is never told it is nearer than it is)
    and at most about twice it: it is rewritten when the job has halved its distance to the
    front, when it moves back (a higher-priority job came in ahead), and when it appears or goes.
    1, "runs next", is always exact."""
    if shown is None or position is None:
        return shown != position
    return position > shown or position <= shown // 2


def _completed(job: PluginJob) -> str:
    return job.status.completion_time or job.created


def expired(jobs: list[PluginJob], now: datetime, ttl_seconds: int, history_size: int) -> list[PluginJob]:
    """Finished jobs to delete: older than the TTL, or beyond the newest ``history_size`` of
    their namespace (per namespace: one tenant's many jobs never push out another's — deleting a
    job deletes its outputs)."""
    finished = sorted(
        (j for j in jobs if j.status.phase in {p.value for p in FINISHED_PHASES}),
        key=_completed,
        reverse=True,
    )
    doomed: dict[str, PluginJob] = {}
    kept: Counter[str] = Counter()
    for job in finished:
        kept[job.namespace] += 1
        if kept[job.namespace] > history_size:
            doomed[job.key] = job
    if ttl_seconds > 0:
        cutoff = stamp(now - timedelta(seconds=ttl_seconds))
        doomed.update({j.key: j for j in finished if _completed(j) < cutoff})
    return list(doomed.values())
