"""Table tests of admission order, concurrency limits, queue positions and history expiry."""

from __future__ import annotations

from datetime import UTC, datetime

from kubecircus.operator.queue import expired, plan_queue, shown_position_moves

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


def test_a_draining_queue_costs_each_job_a_few_position_writes_and_never_understates_its_place():
    """200 jobs drain through one slot; every write the plans ask for is applied."""
    queue = [
        JobBuilder(f"w{i:03}").phase("Queued").created(f"2026-01-01T00:{i // 60:02}:{i % 60:02}Z").build()
        for i in range(200)
    ]
    writes: dict[str, int] = {}
    while queue:
        plan = plan_queue(queue, PLUGINS, max_concurrent_jobs=1, positions_shown=20)
        assert len(plan.admit) == 1 and plan.admit[0] is queue[0]  # the oldest, in order
        for key, position in plan.positions.items():
            if key == queue[0].key:
                continue  # the admission's own patch clears it
            writes[key] = writes.get(key, 0) + 1
            job = next(j for j in queue if j.key == key)
            job.status.queue_position = position
        queue = queue[1:]  # admitted; it runs, and finishes before the next round
        for true_place, job in enumerate(queue, start=1):  # the places while it ran
            shown = job.status.queue_position
            if true_place <= 20:
                assert shown is not None and true_place <= shown <= 2 * true_place - 1, (job.key, shown)
            elif true_place > 20:
                assert shown is None or shown >= true_place
    # log2(20) + 1 = 5 at most (20, 10, 5, 2, 1), never one per admission ahead (up to 199)
    assert max(writes.values()) <= 5
    assert sum(writes.values()) <= 5 * 200


def test_a_shown_place_is_rewritten_when_halved_moved_back_shown_or_cleared():
    assert shown_position_moves(None, 7) and shown_position_moves(7, None)
    assert not shown_position_moves(None, None) and not shown_position_moves(4, 4)
    assert shown_position_moves(10, 5) and not shown_position_moves(10, 6)
    assert shown_position_moves(2, 1) and shown_position_moves(3, 1)  # 1 is always exact
    assert shown_position_moves(3, 4)  # a higher-priority job came in ahead
