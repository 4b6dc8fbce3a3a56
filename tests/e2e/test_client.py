"""The ``kubecircus`` client commands against the local cluster, as a person runs them: the real
CLI in a subprocess with the cluster's kubeconfig, nothing but its exit code and output checked
(and the cluster's state, through the API server and the store, afterwards)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from kubernetes import client

from e2ekit import INPUTS
from kubetest import KUBECONFIG

ROOT = Path(__file__).resolve().parents[2]
RESULTS = {"results": {"lesionCandidates": [{"x": 10, "y": 20, "z": 3, "confidence": 0.9}]}}
GOOD = (
    "echo hello from the plug-in; "
    f"echo '{json.dumps(RESULTS)}' > /circus/out/results.json; "
    "mkdir -p /circus/out/viz; echo fake-png > /circus/out/viz/slice.png"
)


def kubecircus(
    *args: object, kubeconfig: Path = KUBECONFIG, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The CLI of this tree, with no store settings from the caller's environment."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "KUBECIRCUS_STORE_ENDPOINT"}
    }
    env.update(KUBECONFIG=str(kubeconfig), PYTHONPATH=str(ROOT), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "kubecircus.cli", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        cwd=ROOT,
        env=env,
        check=False,
    )


def one_line_failure(done: subprocess.CompletedProcess[str], after_upload: bool = False) -> str:
    """The single stderr line of an expected failure (exit 1, no traceback). ``after_upload``:
    the upload's progress and summary lines come first; the failure is still one last line."""
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    if after_upload:
        assert lines and lines[-2].startswith("uploaded "), done.stderr
        lines = lines[-1:]
    assert len(lines) == 1 and lines[0].startswith("kubecircus: "), done.stderr
    return lines[0]


def keys(store, prefix: str) -> list[str]:
    return sorted(
        o.object_name for o in store.list_objects(bucket_name=INPUTS, prefix=prefix, recursive=True)
    )


def test_submit_wait_status_logs_results_of_a_successful_job(
    ns, jobs, make_plugin, sample_series, store, tmp_path
):
    plugin = make_plugin(GOOD)
    done = kubecircus("submit", sample_series, "--plugin", plugin, "-n", ns, "--name", "ct-1", "--wait")
    assert done.returncode == 0, done.stderr
    assert f"submitted PluginJob {ns}/ct-1" in done.stdout
    assert json.loads(done.stdout[done.stdout.index("{") :]) == RESULTS  # the results, printed
    assert "Succeeded" in done.stderr and f"kubectl -n {ns} get pluginjob ct-1 -w" in done.stderr
    # what it made: the series under the namespace, a job reading it
    assert len(keys(store, f"{ns}/ct-1/")) == len(list(sample_series.iterdir())) == 6
    job = jobs.get("ct-1")
    assert job["spec"]["inputs"] == [{"source": {"bucket": INPUTS, "prefix": f"{ns}/ct-1/"}}]
    assert job["status"]["phase"] == "Succeeded"

    # (make test deploys with history.ttlSeconds=60: what follows must read the job within a minute)
    table = kubecircus("status", "-n", ns)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["NAME", "PLUGIN", "PHASE", "PROGRESS", "POSITION", "AGE", "REASON"]
    assert [row.split()[:4] for row in rows] == [["ct-1", plugin, "Succeeded", "100%"]]
    assert rows[0].split()[-1] == "Completed"

    one = kubecircus("status", "ct-1", "-n", ns)
    assert one.returncode == 0 and "Phase:" in one.stdout and "Succeeded" in one.stdout

    logs = kubecircus("logs", "ct-1", "-n", ns)
    assert logs.returncode == 0, logs.stderr
    assert "hello from the plug-in" in logs.stdout

    out = tmp_path / "outputs"
    results = kubecircus("results", "ct-1", "-n", ns, "--download", out)
    assert results.returncode == 0, results.stderr
    assert json.loads(results.stdout) == RESULTS
    assert json.loads((out / "out" / "results.json").read_text()) == RESULTS
    assert (out / "out" / "viz" / "slice.png").read_text() == "fake-png\n"
    assert "hello from the plug-in" in (out / "plugin-log.txt").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert {f["name"] for f in manifest["outputs"]} == {"results.json", "viz/slice.png"}

    # the same through the API server's port-forward, as from a machine outside the cluster
    bridged = tmp_path / "bridged"
    again = kubecircus("-v", "results", "ct-1", "-n", ns, "--download", bridged, "--port-forward")
    assert again.returncode == 0, again.stderr
    assert "object store through a port-forward" in again.stderr
    assert sorted(p.relative_to(bridged) for p in bridged.rglob("*") if p.is_file()) == sorted(
        p.relative_to(out) for p in out.rglob("*") if p.is_file()
    )


def test_a_failing_job_exits_1_with_its_reason_and_log_tail(ns, make_plugin, sample_series):
    plugin = make_plugin("echo cannot find lungs; exit 3")
    done = kubecircus("submit", sample_series, "--plugin", plugin, "-n", ns, "--name", "bad", "--wait")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "cannot find lungs" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("kubecircus: bad ended Failed (ExitCode)")


def test_an_unknown_plugin_fails_with_one_line_before_uploading(ns, sample_series, store):
    done = kubecircus("submit", sample_series, "--plugin", "no-such-plugin-x1", "-n", ns)
    assert one_line_failure(done) == (
        "kubecircus: no Plugin named no-such-plugin-x1; `kubectl get plugins` lists them"
    )
    assert keys(store, f"{ns}/no-such-plugin-x1") == []


def test_an_empty_folder_fails_with_one_line(ns, make_plugin, tmp_path):
    (tmp_path / "empty").mkdir()
    done = kubecircus("submit", tmp_path / "empty", "--plugin", make_plugin("true"), "-n", ns)
    assert one_line_failure(done) == f"kubecircus: {tmp_path / 'empty'} holds no files: nothing to submit"


def test_a_refused_job_is_one_line_and_its_upload_is_taken_back(core, ns, make_plugin, sample_series, store):
    """A quota of no PluginJobs makes the API server refuse the create after the upload."""
    quota = client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="no-jobs"),
        spec=client.V1ResourceQuotaSpec(hard={"count/pluginjobs.kubecircus.io": "0"}),
    )
    core.create_namespaced_resource_quota(ns, quota)
    deadline = time.monotonic() + 30
    while core.read_namespaced_resource_quota("no-jobs", ns).status.hard is None:  # quota controller
        assert time.monotonic() < deadline
        time.sleep(0.5)
    done = kubecircus("submit", sample_series, "--plugin", make_plugin("true"), "-n", ns, "--name", "over")
    line = one_line_failure(done, after_upload=True)
    assert "exceeded quota" in line, line
    assert keys(store, f"{ns}/over/") == []


def test_cancel_of_a_suspended_job_ends_it_cancelled(ns, jobs, make_plugin):
    jobs.create("held", make_plugin("true"), suspend=True)
    jobs.wait("held", {"Queued"})
    done = kubecircus("cancel", "held", "-n", ns, "--wait", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "it leaves the queue and ends Cancelled" in done.stdout and "held ended Cancelled" in done.stdout
    assert jobs.status("held")["phase"] == "Cancelled"
    again = kubecircus("cancel", "held", "-n", ns)
    assert again.returncode == 0 and "already ended Cancelled" in again.stdout


def test_logs_of_a_running_job_come_from_its_pod_and_cancel_stops_it(ns, jobs, make_plugin, sample_series):
    plugin = make_plugin("echo first line; sleep 120")
    assert kubecircus("submit", sample_series, "--plugin", plugin, "-n", ns, "--name", "slow").returncode == 0
    jobs.wait("slow", {"Running"})
    deadline = time.monotonic() + 60
    while "first line" not in (logs := kubecircus("logs", "slow", "-n", ns)).stdout:
        assert time.monotonic() < deadline, (logs.returncode, logs.stdout, logs.stderr)
        time.sleep(1)
    cancelled = kubecircus("cancel", "slow", "-n", ns, "--wait", timeout=120)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "the operator deletes its pods" in cancelled.stdout
    assert jobs.status("slow")["phase"] == "Cancelled"


def test_an_unknown_job_and_an_unreachable_cluster_are_one_line(ns, tmp_path):
    assert one_line_failure(kubecircus("status", "nothing-here", "-n", ns)) == (
        f"kubecircus: no PluginJob named nothing-here in namespace {ns} (kubecircus status lists them)"
    )
    nowhere = tmp_path / "kubeconfig"
    nowhere.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
    )
    line = one_line_failure(kubecircus("status", kubeconfig=nowhere))
    assert (
        line
        == "kubecircus: cannot reach the Kubernetes API server at https://127.0.0.1:1: Connection refused"
    )
    missing = one_line_failure(kubecircus("status", kubeconfig=tmp_path / "missing"))
    assert missing.startswith("kubecircus: no kubeconfig: ")


def test_a_bad_name_is_a_usage_error(tmp_path):
    done = kubecircus("submit", tmp_path, "--plugin", "p", "--name", "Bad_Name")
    assert done.returncode == 2 and "Traceback" not in done.stderr
