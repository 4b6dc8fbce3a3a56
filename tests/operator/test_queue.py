"""Table tests of admission order, concurrency limits, queue positions and history expiry."""

from __future__ import annotations

from datetime import UTC, datetime

from kubecircus.operator.queue import expired, plan_queue

from jobbuilders import JobBuilder, plugin

PLUGINS = {"lesion": plugin("lesion"), "solo": plugin("solo", maxConcurrent=1)}


def names(jobs):
    return [j.name for j in jobs]


def test_priority_then_creation_order():
    jobs = [
        JobBuilder("low-old").phase("Queued").created("2026-01-01T00:00:01Z").build(),
        JobBuilder("high-new").phase("Queued").spec(priority=5).created("2026-01-01T00:00:09Z").build(),
        JobBuilder("low-new").phase("Queued").created("2026-01-01T00:00:05Z").build(),
    ]
    plan = plan_queue(jobs, PLUGINS, max_concurrent_jobs=1)
    assert names(plan.admit) == ["high-new"]
    assert plan.positions == {"team/low-old": 1, "team/low-new": 2}


def test_a_resubmitted_job_queues_behind_the_jobs_already_waiting():
    jobs = [
        JobBuilder("waited").phase("Queued", queuedAt="2026-01-01T00:00:05Z").created("2026-01-01T00:00:05Z"),
        # created first, failed, resubmitted later: its place is when it came back
        JobBuilder("again").phase("Queued", queuedAt="2026-01-01T00:00:09Z").created("2026-01-01T00:00:01Z"),
    ]
    plan = plan_queue([j.build() for j in jobs], PLUGINS, max_concurrent_jobs=1)
    assert names(plan.admit) == ["waited"] and plan.positions == {"team/again": 1}


def test_global_limit_counts_active_jobs():
    jobs = [JobBuilder("running").phase("Running").build(), JobBuilder("waiting").phase("Queued").build()]
    plan = plan_queue(jobs, PLUGINS, max_concurrent_jobs=1)
    assert plan.admit == [] and plan.positions == {"team/waiting": 1}
    assert names(plan_queue(jobs, PLUGINS, max_concurrent_jobs=2).admit) == ["waiting"]


def test_plugin_limit_does_not_block_other_plugins():
    jobs = [
        JobBuilder("solo-running", plugin="solo").phase("Staging").build(),
        JobBuilder("solo-next", plugin="solo").phase("Queued").spec(priority=9).build(),
        JobBuilder("other", plugin="lesion").phase("Queued").build(),
    ]
    plan = plan_queue(jobs, PLUGINS, max_concurrent_jobs=5)
    assert names(plan.admit) == ["other"]
    assert plan.positions == {"team/solo-next": 1}


def test_suspended_and_cancelled_jobs_are_not_admitted():
    jobs = [
        JobBuilder("s").phase("Queued", queuePosition=1).spec(suspend=True).build(),
        JobBuilder("c").phase("Queued").spec(cancel=True).build(),
    ]
    plan = plan_queue(jobs, PLUGINS, max_concurrent_jobs=3)
    assert plan.admit == [] and plan.positions == {"team/s": None}


def test_positions_are_only_rewritten_when_they_change():
    jobs = [
        JobBuilder("a").phase("Queued", queuePosition=1).build(),
        JobBuilder("b").phase("Queued", queuePosition=2).build(),
        JobBuilder("r").phase("Running").build(),
    ]
    assert plan_queue(jobs, PLUGINS, max_concurrent_jobs=1).positions == {}


def test_admitted_jobs_lose_their_position():
    jobs = [JobBuilder("a").phase("Queued", queuePosition=1).build()]
    plan = plan_queue(jobs, PLUGINS, max_concurrent_jobs=1)
    assert names(plan.admit) == ["a"] and plan.positions == {"team/a": None}


def test_jobs_with_a_missing_plugin_wait_for_their_failure():
    plan = plan_queue([JobBuilder("x", plugin="nope").phase("Queued").build()], PLUGINS, 1)
    assert plan.admit == []


def test_history_by_ttl_and_by_count():
    now = datetime(2026, 1, 10, tzinfo=UTC)
    jobs = [
        JobBuilder("old").phase("Succeeded", completionTime="2026-01-01T00:00:00Z").build(),
        JobBuilder("recent1").phase("Failed", completionTime="2026-01-09T00:00:00Z").build(),
        JobBuilder("recent2").phase("Cancelled", completionTime="2026-01-09T12:00:00Z").build(),
        JobBuilder("active").phase("Running").build(),
    ]
    assert names(expired(jobs, now, ttl_seconds=3 * 86400, history_size=100)) == ["old"]
    assert sorted(names(expired(jobs, now, ttl_seconds=0, history_size=1))) == ["old", "recent1"]


def test_history_size_counts_per_namespace():
    """Another tenant's thousand jobs never push out (and delete the outputs of) this one's."""
    now = datetime(2026, 1, 10, tzinfo=UTC)
    mine = JobBuilder("mine", namespace="a").phase("Succeeded", completionTime="2026-01-01T00:00:00Z").build()
    theirs = [
        JobBuilder(f"t{i}", namespace="b")
        .phase("Failed", completionTime=f"2026-01-09T00:00:{i:02d}Z")
        .build()
        for i in range(5)
    ]
    doomed = names(expired([mine, *theirs], now, ttl_seconds=0, history_size=3))
    assert sorted(doomed) == ["t0", "t1"]


def test_a_tenant_cannot_jump_the_queue_past_its_cap():
    from kubecircus.operator.config import OperatorConfig

    config = OperatorConfig(identity="t", max_priority=100, namespace_max_priority="greedy=5")
    jobs = [
        JobBuilder("mine", namespace="team")
        .phase("Queued")
        .spec(priority=50)
        .created("2026-01-01T00:00:01Z")
        .build(),
        JobBuilder("loud", namespace="greedy")
        .phase("Queued")
        .spec(priority=1000)
        .created("2026-01-01T00:00:00Z")
        .build(),
    ]
    plan = plan_queue(jobs, PLUGINS, 1, config.priority_cap)
    assert names(plan.admit) == ["mine"]  # 50 beats greedy's 1000, capped to 5
    assert names(plan_queue(jobs, PLUGINS, 1).admit) == ["loud"]  # uncapped, it would have won


def test_only_the_first_waiting_jobs_keep_a_position_so_an_admission_costs_few_writes():
    waiting = [
        JobBuilder(f"w{i:03}")
        .phase("Queued", queuePosition=i)
        .created(f"2026-01-01T00:{i // 60:02}:{i % 60:02}Z")
        for i in range(1, 201)
    ]
    first = plan_queue([w.build() for w in waiting], PLUGINS, max_concurrent_jobs=1, positions_shown=20)
    assert names(first.admit) == ["w001"]
    # w002..w021 move up one place; w022..w200 lose theirs (beyond the first 20): one-off
    assert {k: v for k, v in first.positions.items() if v is not None} == {
        f"team/w{i:03}": i - 1 for i in range(2, 22)
    }
    settled = [
        JobBuilder(f"w{i:03}")
        .phase("Queued", queuePosition=(i - 1) if i - 1 <= 20 else None)
        .created(f"2026-01-01T00:{i // 60:02}:{i % 60:02}Z")
        for i in range(2, 201)
    ]
    running = JobBuilder("w001").phase("Running").build()
    assert (
        plan_queue([running, *(w.build() for w in settled)], PLUGINS, 1, positions_shown=20).positions == {}
    )
    done = JobBuilder("w001").phase("Succeeded").build()
    nxt = plan_queue([done, *(w.build() for w in settled)], PLUGINS, 1, positions_shown=20)
    assert len(nxt.positions) <= 21  # the admitted one, and the first 20 moving up: never 199
