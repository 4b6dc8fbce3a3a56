"""Queue scale: what waiting PluginJobs cost the API server, and how fast the queue moves.

Needs the local cluster with the operator deployed (`make deploy`); `make bench-queue` runs it.
One run prints, each against the goal of the scale issue:

1. the queue moving (at the deployed queue.maxConcurrentJobs, 1 by default): API writes per
   job over its life, from the API server's own apiserver_request_total (every client: the
   operator, the scheduler and kubelet for the job's three pods), and slot-free -> next-job-
   admitted latency (median, p95), seen by a watch;
2. throughput at maxConcurrentJobs=4 (the bench upgrades the release, then restores it): no-op
   PluginJobs per minute against batch/v1 Jobs (one pod each) at parallelism 4, same cluster;
3. a blocked queue: a job holds the slot, WAITING jobs queue behind it; API requests per second
   while they wait (against the idle baseline measured first) and the operator's RSS.

    .venv/bin/python benchmarks/bench_queue.py [--waiting 1000] [--jobs 20] [--window 60]
        [--parts moving,throughput,waiting]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from kubernetes import client, watch

from dicomfactory import SeriesSpec, write_series
from e2ekit import GROUP, INPUTS, SYSTEM, TOOLBOX, VERSION, bundled_store, job_body
from kubetest import KUBECONFIG, api_client, namespace
from storetest import upload_folder

ROOT = Path(__file__).resolve().parents[1]
NOOP = "echo '{}' > /circus/out/results.json"
WRITES = {"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION"}
ENDED = {"Succeeded", "Failed", "Cancelled"}


def say(text: str) -> None:
    print(text, flush=True)


def requests(api: client.ApiClient) -> dict[tuple[str, str], float]:
    """apiserver_request_total summed by (verb, resource): the API server's own count."""
    response = api.call_api("GET", api.configuration.host + "/metrics")
    response.read()
    text = response.data.decode()
    totals: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{"):
            labels, value = line.rsplit(" ", 1)
            verb = labels.split('verb="', 1)[1].split('"', 1)[0]
            resource = labels.split('resource="', 1)[1].split('"', 1)[0] if 'resource="' in labels else ""
            totals[verb, resource] = totals.get((verb, resource), 0.0) + float(value)
    return totals


def delta(before: dict, after: dict, resource: str | None = None) -> tuple[float, float]:
    """(requests, writes) between two readings, of every resource or of one."""
    keys = [k for k in after if resource is None or k[1] == resource]
    total = sum(after[k] - before.get(k, 0) for k in keys)
    writes = sum(after[k] - before.get(k, 0) for k in keys if k[0] in WRITES)
    return total, writes


def cpu_busy_seconds() -> float:
    """Core-seconds this machine has spent busy (not idle or iowait) since boot, from /proc/stat.

    The local cluster runs on this machine, so what a phase costs in CPU is the difference of two
    readings: every component's share (API server, etcd, kubelet, containerd, CNI, enforcer,
    operator, MinIO, the pods themselves) in one number.
    """
    fields = Path("/proc/stat").read_text(encoding="utf-8").splitlines()[0].split()[1:]
    ticks = [int(value) for value in fields]
    idle = ticks[3] + ticks[4]
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def operator_rss_mib() -> float:
    """Resident memory of the operator process (it runs on this machine's node)."""
    pids = subprocess.run(
        ["pgrep", "-f", "kubecircus operator"], capture_output=True, text=True, encoding="utf-8", check=False
    ).stdout.split()
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise SystemExit("no operator process found on this machine")


def register(custom, script: str) -> str:
    name = f"bench-q-{uuid.uuid4().hex[:6]}"
    spec = {"image": TOOLBOX, "version": "1.0.0", "command": ["sh", "-c", script], "timeoutSeconds": 3600}
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Plugin", "metadata": {"name": name}, "spec": spec}
    custom.create_cluster_custom_object(GROUP, VERSION, "plugins", body)
    return name


def create_jobs(custom, ns: str, plugin: str, names: list[str]) -> None:
    def create(name: str) -> None:
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, "pluginjobs", job_body(name, plugin, ns))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, names))


class PhaseWatch(threading.Thread):
    """When (monotonic) each job was first seen in each phase."""

    def __init__(self, custom, ns: str) -> None:
        super().__init__(daemon=True)
        self.custom, self.ns = custom, ns
        self.seen: dict[tuple[str, str], float] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            stream = watch.Watch().stream(
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.ns,
                "pluginjobs",
                timeout_seconds=30,
            )
            for event in stream:
                body = event["object"]
                phase = (body.get("status") or {}).get("phase")
                if phase:
                    self.seen.setdefault((body["metadata"]["name"], phase), time.monotonic())
                if self.stopped.is_set():
                    break

    def when(self, name: str, phase: str) -> float | None:
        return self.seen.get((name, phase))


def wait_all(watcher: PhaseWatch, names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(any(watcher.when(n, p) for p in ENDED) for n in names):
            return
        time.sleep(0.5)
    raise SystemExit(f"jobs did not finish within {timeout:.0f} s")


def queue_moving(api, custom, ns: str, plugin: str, count: int) -> None:
    watcher = PhaseWatch(custom, ns)
    watcher.start()
    names = [f"move-{i:03d}" for i in range(count)]
    before = requests(api)
    create_jobs(custom, ns, plugin, names)
    wait_all(watcher, names, 120 + 60 * count)
    time.sleep(5)  # the last job's pods and claim are deleted after it ends
    after = requests(api)
    total, writes = delta(before, after)
    _, job_writes = delta(before, after, "pluginjobs")
    watcher.stopped.set()
    ends = sorted(min(t for p in ENDED if (t := watcher.when(n, p))) for n in names)
    admitted = sorted(t for n in names if (t := watcher.when(n, "Staging")))
    latencies = []
    for end in ends[:-1]:  # the next admission after each slot frees
        following = [a for a in admitted if a >= end]
        if following:
            latencies.append(following[0] - end)
    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 2 else float("nan")
    say(f"queue moving: {count} no-op jobs")
    say(f"  API writes per job over its life    {writes / count:7.1f}   (every client: pods, events, ...)")
    say(f"    of which to the PluginJob          {job_writes / count:7.1f}   (goal <= 12)")
    say(f"  API requests per job                 {total / count:7.1f}")
    say(f"  slot free -> next admitted  median   {statistics.median(latencies):7.2f} s")
    say(f"                              p95      {p95:7.2f} s   (goal <= 1 s)")


def set_slots(slots: int) -> None:
    subprocess.run(
        [
            str(ROOT / ".cluster/bin/helm"),
            "--kubeconfig",
            str(KUBECONFIG),
            "upgrade",
            "kubecircus",
            str(ROOT / "helm/kubecircus"),
            "-n",
            SYSTEM,
            "--reuse-values",
            "--set",
            f"queue.maxConcurrentJobs={slots}",
            "--wait",
        ],
        check=True,
        capture_output=True,
    )


def deployed_slots(api) -> int:
    deployment = client.AppsV1Api(api).read_namespaced_deployment("kubecircus-operator", SYSTEM)
    env = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}
    return int(env["KUBECIRCUS_MAX_CONCURRENT_JOBS"])


def throughput(api, custom, core, ns: str, plugin: str, count: int) -> None:
    watcher = PhaseWatch(custom, ns)
    watcher.start()
    names = [f"tput-{i:03d}" for i in range(count)]
    started, cpu = time.monotonic(), cpu_busy_seconds()
    create_jobs(custom, ns, plugin, names)
    wait_all(watcher, names, 120 + 30 * count)
    jobs_per_minute = count / (time.monotonic() - started) * 60
    job_cpu = (cpu_busy_seconds() - cpu) / count
    watcher.stopped.set()
    batch = client.BatchV1Api(api)
    body = client.V1Job(
        metadata=client.V1ObjectMeta(name="bench-batch"),
        spec=client.V1JobSpec(
            completions=count,
            parallelism=4,
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    automount_service_account_token=False,
                    containers=[
                        client.V1Container(
                            name="main", image=TOOLBOX, image_pull_policy="Never", command=["true"]
                        )
                    ],
                )
            ),
        ),
    )
    started, cpu = time.monotonic(), cpu_busy_seconds()
    batch.create_namespaced_job(ns, body)
    while (batch.read_namespaced_job_status("bench-batch", ns).status.succeeded or 0) < count:
        time.sleep(0.2)
    batch_per_minute = count / (time.monotonic() - started) * 60
    pod_cpu = (cpu_busy_seconds() - cpu) / count
    say(f"throughput at 4 slots: {count} no-op PluginJobs, {count} batch/v1 pods")
    say(f"  PluginJobs per minute               {jobs_per_minute:7.1f}")
    say(f"  batch/v1 Job pods per minute        {batch_per_minute:7.1f}")
    ratio = jobs_per_minute / batch_per_minute
    say(f"  ratio                               {ratio:7.0%}   (goal >= 30 %: three pods per job)")
    cores = os.cpu_count() or 1
    say(f"  CPU core-seconds per PluginJob      {job_cpu:7.1f}   (this machine, {cores} cores, all of it)")
    say(f"  CPU core-seconds per batch/v1 pod   {pod_cpu:7.1f}")
    spans = []
    for start, end in (("Staging", "Running"), ("Running", "Collecting"), ("Collecting", "Succeeded")):
        taken = [
            watcher.when(n, end) - watcher.when(n, start)  # type: ignore[operator]
            for n in names
            if watcher.when(n, start) and watcher.when(n, end)
        ]
        spans.append(f"{start} {statistics.median(taken):.1f} s" if taken else f"{start} -")
    say("  median time in each phase            " + ", ".join(spans))


def waiting(api, custom, ns: str, blocker: str, plugin: str, count: int, window: float) -> None:
    idle_before = requests(api)
    time.sleep(window)
    idle, _ = delta(idle_before, requests(api))
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "pluginjobs", job_body("blocker", blocker, ns))
    while (
        custom.get_namespaced_custom_object(GROUP, VERSION, ns, "pluginjobs", "blocker").get("status") or {}
    ).get("phase") != "Running":
        time.sleep(1)
    created = time.monotonic()
    create_jobs(custom, ns, plugin, [f"wait-{i:04d}" for i in range(count)])
    say(f"a blocked queue: {count} jobs created in {time.monotonic() - created:.0f} s")
    before = requests(api)
    time.sleep(window)
    taking_in, _ = delta(before, requests(api))
    settled_at = time.monotonic()
    while time.monotonic() - settled_at < 300:  # until the new jobs are taken in (each got Queued)
        sample = requests(api)
        time.sleep(10)
        if delta(sample, requests(api))[0] / 10 < idle / window + 5:
            break
    say(f"  taken in (rate below idle + 5/s) after {time.monotonic() - created:.0f} s")
    before = requests(api)
    time.sleep(window)
    after = requests(api)
    total, writes = delta(before, after)
    busiest = sorted(((after[k] - before.get(k, 0), k) for k in after), reverse=True)[:4]
    say(f"  API requests/s, idle cluster         {idle / window:7.2f}")
    say(f"  API requests/s, taking them in       {taking_in / window:7.2f}   (first {window:.0f} s)")
    say(f"  API requests/s, {count} waiting      {total / window:7.2f}   (goal <= 5)")
    say(f"  API writes/s, {count} waiting        {writes / window:7.2f}")
    say(
        "  busiest: "
        + ", ".join(f"{verb} {resource or '-'} {n / window:.2f}/s" for n, (verb, resource) in busiest)
    )
    say(f"  operator RSS                         {operator_rss_mib():7.0f} MiB   (goal <= 200)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=20, help="jobs in the moving-queue and throughput parts")
    parser.add_argument("--window", type=float, default=60, help="seconds of each request-rate reading")
    parser.add_argument(
        "--parts", default="moving,throughput,waiting", help="which parts to run (comma-separated)"
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    api = api_client()
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    noop, sleeper = register(custom, NOOP), register(custom, "sleep 3600")
    slots = deployed_slots(api)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            write_series(SeriesSpec(rows=16, columns=16, slices=1), Path(tmp) / "s1")
            with namespace(core, "bench-q") as ns:
                upload_folder(bundled_store(core), Path(tmp) / "s1", INPUTS, f"{ns}/s1/")
                create_jobs(custom, ns, noop, ["warm-up"])  # fills the conversion cache
                warm = PhaseWatch(custom, ns)
                warm.start()
                wait_all(warm, ["warm-up"], 300)
                warm.stopped.set()
                if "moving" in parts:
                    queue_moving(api, custom, ns, noop, args.jobs)
            if "throughput" in parts:
                set_slots(4)
                with namespace(core, "bench-q") as ns:
                    upload_folder(bundled_store(core), Path(tmp) / "s1", INPUTS, f"{ns}/s1/")
                    throughput(api, custom, core, ns, noop, args.jobs)
                set_slots(slots)
            if "waiting" in parts:
                with namespace(core, "bench-q") as ns:
                    upload_folder(bundled_store(core), Path(tmp) / "s1", INPUTS, f"{ns}/s1/")
                    waiting(api, custom, ns, sleeper, noop, args.waiting, args.window)
    finally:
        if deployed_slots(api) != slots:
            set_slots(slots)
        for plugin in (noop, sleeper):
            custom.delete_cluster_custom_object(GROUP, VERSION, "plugins", plugin)


if __name__ == "__main__":
    main()
