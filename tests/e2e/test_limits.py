"""Concurrency limits with a wider global limit: a Plugin's maxConcurrent holds its own jobs back
without blocking another plug-in's. The chart is upgraded for the test and restored after it."""

from __future__ import annotations

import pytest

from e2ekit import max_concurrent, upgrade_chart

ACTIVE = {"Staging", "Running", "Collecting"}


@pytest.fixture
def two_slots():
    upgrade_chart("queue.maxConcurrentJobs=2")
    try:
        yield
    finally:
        upgrade_chart("queue.maxConcurrentJobs=1")


def test_plugin_limit_holds_its_jobs_but_not_other_plugins(two_slots, custom, jobs, make_plugin):
    solo = make_plugin("sleep 4; echo '{}' > /circus/out/results.json", maxConcurrent=1)
    other = make_plugin("sleep 4; echo '{}' > /circus/out/results.json")
    jobs.create("solo-1", solo)
    jobs.create("solo-2", solo)
    jobs.create("other-1", other)
    final = {
        name: jobs.wait(name, {"Succeeded", "Failed"}, timeout=240)
        for name in ("solo-1", "solo-2", "other-1")
    }
    assert {s["phase"] for s in final.values()} == {"Succeeded"}
    assert max_concurrent([final["solo-1"], final["solo-2"]]) == 1  # the Plugin's maxConcurrent
    assert max_concurrent(list(final.values())) == 2  # another plug-in's job ran beside it
