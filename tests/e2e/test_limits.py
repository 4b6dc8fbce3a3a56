"""Concurrency limits with a wider global limit: a Plugin's maxConcurrent holds its own jobs back
without blocking another plug-in's. The chart is upgraded for the test and restored after it."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from e2ekit import GROUP, SYSTEM, VERSION
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
    samples: list[dict[str, str]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            items = custom.list_namespaced_custom_object(GROUP, VERSION, jobs.ns, "pluginjobs")["items"]
            samples.append({j["metadata"]["name"]: (j.get("status") or {}).get("phase", "") for j in items})
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        jobs.create("solo-1", solo)
        jobs.create("solo-2", solo)
        jobs.create("other-1", other)
        for name in ("solo-1", "solo-2", "other-1"):
            assert jobs.wait(name, {"Succeeded", "Failed"}, timeout=240)["phase"] == "Succeeded"
    finally:
        stop.set()
        watcher.join()
    solo_active = [sum(1 for n, p in s.items() if n.startswith("solo") and p in ACTIVE) for s in samples]
    all_active = [sum(1 for p in s.values() if p in ACTIVE) for s in samples]
    assert max(solo_active) == 1  # the Plugin's maxConcurrent
    assert max(all_active) == 2  # another plug-in's job ran beside it: the global limit of 2 was used
