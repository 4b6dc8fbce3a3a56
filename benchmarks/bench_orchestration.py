"""P2, orchestration: a no-op plug-in job against a bare pod, same cluster, same run.

Needs the local cluster with the operator deployed (`make deploy`). Each round, interleaved:

- pod: a bare pod running the toolbox's `true`, creation → Succeeded;
- job: a PluginJob of a no-op plug-in (it writes `{}` to results.json) on a one-slice series,
  creation → Succeeded — through the queue, staging (cached after the first round), the
  isolation proof, the plug-in pod and collecting.

The job's timeline is taken from a watch of its status and its pods (client-side clock), so it
says where the seconds go: admission, workspace, each pod from creation to end, and the
decisions between them. Prints medians and the ratio job/pod. Goal (data path issue): <= 4x.

    .venv/bin/python benchmarks/bench_orchestration.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from kubernetes import client, watch

from dicomfactory import SeriesSpec, write_series
from e2ekit import GROUP, INPUTS, TOOLBOX, VERSION, bundled_store, job_body
from kubetest import api_client, namespace, toolbox_pod
from storetest import upload_folder

NOOP = "echo '{}' > /circus/out/results.json"


class Timeline:
    """First time (monotonic, since start) each event was seen."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()

    def mark(self, event: str) -> None:
        with self.lock:
            self.seen.setdefault(event, time.monotonic() - self.start)


def watch_pods(core, ns: str, timeline: Timeline, stop: threading.Event) -> None:
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_pod, ns, timeout_seconds=120):
        pod = event["object"]
        role = (pod.metadata.labels or {}).get("kubecircus.io/role")
        if role:
            timeline.mark(f"{role} created")
            if pod.status.phase in ("Running", "Succeeded") or any(
                s.state.running or s.state.terminated for s in pod.status.init_container_statuses or []
            ):
                timeline.mark(f"{role} started")
            if pod.status.phase in ("Succeeded", "Failed"):
                timeline.mark(f"{role} ended")
        if stop.is_set():
            w.stop()


def run_job(custom, core, ns: str, plugin: str) -> Timeline:
    name = f"noop-{uuid.uuid4().hex[:6]}"
    timeline = Timeline()
    stop = threading.Event()
    watcher = threading.Thread(target=watch_pods, args=(core, ns, timeline, stop), daemon=True)
    watcher.start()
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "pluginjobs", job_body(name, plugin, ns))
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status = (
            custom.get_namespaced_custom_object(GROUP, VERSION, ns, "pluginjobs", name).get("status") or {}
        )
        phase = status.get("phase")
        if phase:
            timeline.mark(phase)
        if phase in ("Succeeded", "Failed", "Cancelled"):
            if phase != "Succeeded":
                raise SystemExit(f"the no-op job ended {phase}: {status.get('message')}")
            break
        time.sleep(0.05)
    stop.set()
    return timeline


def run_pod(core, ns: str) -> float:
    name = f"bare-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    core.create_namespaced_pod(ns, toolbox_pod(name, "true"))
    while core.read_namespaced_pod(name, ns).status.phase != "Succeeded":
        time.sleep(0.05)
    seconds = time.monotonic() - started
    core.delete_namespaced_pod(name, ns, grace_period_seconds=0)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    api = api_client()
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    plugin = f"bench-noop-{uuid.uuid4().hex[:6]}"
    custom.create_cluster_custom_object(
        GROUP,
        VERSION,
        "plugins",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Plugin",
            "metadata": {"name": plugin},
            "spec": {
                "image": TOOLBOX,
                "version": "1.0.0",
                "command": ["sh", "-c", NOOP],
                "timeoutSeconds": 60,
            },
        },
    )
    pods, jobs = [], []
    try:
        with namespace(core, "bench") as ns, tempfile.TemporaryDirectory() as tmp:
            write_series(SeriesSpec(rows=16, columns=16, slices=1), Path(tmp) / "s1")
            upload_folder(bundled_store(core), Path(tmp) / "s1", INPUTS, f"{ns}/s1/")
            run_job(custom, core, ns, plugin)  # warm-up: fills the cache, pulls nothing
            for _ in range(args.rounds):
                pods.append(run_pod(core, ns))
                jobs.append(run_job(custom, core, ns, plugin))
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "plugins", plugin)
    pod = statistics.median(pods)
    total = statistics.median(t.seen["Succeeded"] for t in jobs)
    print(f"{args.rounds} rounds, interleaved (medians, seconds since creation)")
    print(f"  bare pod      creation -> Succeeded  {pod:6.2f}")
    print(f"  no-op job     creation -> Succeeded  {total:6.2f}")
    events = sorted(
        {e for t in jobs for e in t.seen}, key=lambda e: statistics.median(t.seen.get(e, 0) for t in jobs)
    )
    for event in events:
        values = [t.seen[event] for t in jobs if event in t.seen]
        print(f"    {event:22s} at {statistics.median(values):6.2f}")
    print(f"job / pod = {total / pod:.1f}x (goal <= 4x)")


if __name__ == "__main__":
    main()
