"""Concurrency limits with a wider global limit: a Plugin's maxConcurrent holds its own jobs back
without blocking another plug-in's. The chart is upgraded for the test and restored after it."""

from __future__ import annotations

import subprocess

import pytest

from e2ekit import SYSTEM, max_concurrent
from kubetest import CACHE_BIN, KUBECONFIG, ROOT

HELM = CACHE_BIN / "helm"
ACTIVE = {"Staging", "Running", "Collecting"}


def _set_global_limit(limit: int) -> None:
    assert HELM.exists(), f"{HELM} is missing: run `make cluster-up`"
    subprocess.run(
        [
            str(HELM),
            "--kubeconfig",
            str(KUBECONFIG),
            "upgrade",
            "kubecircus",
            str(ROOT / "helm" / "kubecircus"),
            "-n",
            SYSTEM,
            "--reuse-values",
            "--set",
            f"queue.maxConcurrentJobs={limit}",
            "--wait",
            "--timeout",
            "3m",
        ],
        check=True,
        capture_output=True,
        text=True,
        encoding="utf-8",
    )
    subprocess.run(
        [
            str(ROOT / ".cluster" / "bin" / "kubectl"),
            "--kubeconfig",
            str(KUBECONFIG),
            "-n",
            SYSTEM,
            "rollout",
            "status",
            "deployment/kubecircus-operator",
            "--timeout=120s",
        ],
        check=True,
        capture_output=True,
        text=True,
        encoding="utf-8",
    )


@pytest.fixture
def two_slots():
    _set_global_limit(2)
    try:
        yield
    finally:
        _set_global_limit(1)


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
