"""PluginJobs through the operator installed by the chart: phases, outputs, failures, Events."""

from __future__ import annotations

import json
import time

from kubernetes import client

RESULTS = '{"results": {"lesionCandidates": [{"x": 10, "y": 20, "z": 3, "confidence": 0.9}]}}'
GOOD = (
    "echo starting analysis; ls -la /circus; "
    f"echo '{RESULTS}' > /circus/out/results.json; "
    "mkdir -p /circus/out/viz; echo fake-png > /circus/out/viz/slice.png; echo done"
)


def events_for(core, ns, name):
    items = core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
    return [(e.type, e.reason) for e in sorted(items, key=lambda e: e.metadata.creation_timestamp)]


def test_a_job_runs_to_success_with_outputs_conditions_and_events(core, k8s, jobs, ns, make_plugin, store):
    plugin = make_plugin(GOOD, resultsSchema={"type": "object", "required": ["results"]})
    jobs.create("ok", plugin)
    status = jobs.wait("ok", {"Succeeded", "Failed"})
    assert status["phase"] == "Succeeded", status
    assert status["exitCode"] == 0 and status["progress"] == 1
    outputs = status["outputs"]
    assert outputs["results"] == json.loads(RESULTS)
    assert (outputs["fileCount"], outputs["totalBytes"]) == (2, len(RESULTS) + 1 + 9)
    manifest = json.loads(
        store.get_object(bucket_name=outputs["bucket"], object_name=outputs["manifest"]).read()
    )
    files = {f["name"]: f for f in manifest["outputs"]}
    assert set(files) == {"results.json", "viz/slice.png"} and files["viz/slice.png"]["size"] == 9
    png = store.get_object(bucket_name=outputs["bucket"], object_name=outputs["prefix"] + "out/viz/slice.png")
    assert png.read() == b"fake-png\n" and png.headers["Content-Type"] == "image/png"
    log = store.get_object(bucket_name=status["logRef"]["bucket"], object_name=status["logRef"]["key"]).read()
    assert b"starting analysis" in log and "starting analysis" in status["logTail"]
    assert [i["id"] for i in status["inputs"]] == [0] and status["inputs"][0]["size"] == [16, 16, 6]
    phases = [c["type"] for c in status["conditions"]]
    assert phases == ["Queued", "Staging", "Running", "Collecting", "Succeeded"]
    assert [c["status"] for c in status["conditions"]] == ["False"] * 4 + ["True"]
    reasons = [r for _, r in events_for(core, ns, "ok")]  # one Event per transition
    assert sorted(reasons) == sorted(["Submitted", "Admitted", "Staged", "PluginSucceeded", "Completed"])
    # everything the job made is gone again
    assert core.list_namespaced_pod(ns).items == [] or all(
        p.metadata.deletion_timestamp for p in core.list_namespaced_pod(ns).items
    )
    assert core.list_namespaced_persistent_volume_claim(ns).items == [] or all(
        c.metadata.deletion_timestamp for c in core.list_namespaced_persistent_volume_claim(ns).items
    )
    # the job's own policy goes once its last pod is gone (the collect pod may still be ending:
    # the job succeeds when its container exits); the standing one stays
    deadline = time.monotonic() + 60
    while True:
        listed = client.NetworkingV1Api(k8s).list_namespaced_network_policy(ns).items
        policies = [p.metadata.name for p in listed]
        if policies == ["kubecircus-plugin-deny-all"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert policies == ["kubecircus-plugin-deny-all"]


def test_the_plugin_sees_the_circus_layout_and_no_network(jobs, make_plugin):
    script = (
        "id -u; touch /circus/in/x 2>/dev/null && echo in-writable || echo in-readonly; "
        "touch /etc/x 2>/dev/null && echo root-writable || echo root-readonly; "
        "touch /tmp/x && echo tmp-writable; "
        "ls /circus/in | tr '\\n' ' '; echo; "
        "cat /var/run/secrets/kubernetes.io/serviceaccount/token 2>/dev/null && echo token || echo no-token; "
        "nc -w 2 $KUBERNETES_SERVICE_HOST $KUBERNETES_SERVICE_PORT -e /bin/true && echo net || echo no-net; "
        "echo '{}' > /circus/out/results.json"
    )
    jobs.create("probe", make_plugin(script))
    status = jobs.wait("probe", {"Succeeded", "Failed"})
    assert status["phase"] == "Succeeded", status
    lines = status["logTail"].split()
    assert lines[0] != "0"  # not root
    assert "in-readonly" in lines and "no-token" in lines and "no-net" in lines
    assert "root-readonly" in lines and "tmp-writable" in lines
    assert {"0.mhd", "0.raw", "0.json"} <= set(lines) and "manifest.json" not in lines


def test_a_failing_plugin_fails_the_job_with_its_exit_code_and_its_log_is_kept(jobs, make_plugin, store):
    jobs.create("bad", make_plugin("echo cannot find lungs; exit 3"))
    status = jobs.wait("bad", {"Succeeded", "Failed"})
    assert (status["phase"], status["reason"], status["exitCode"]) == ("Failed", "ExitCode", 3)
    assert "cannot find lungs" in status["logTail"]
    log = store.get_object(bucket_name=status["logRef"]["bucket"], object_name=status["logRef"]["key"]).read()
    assert log == b"cannot find lungs\n"


def test_missing_results_json_fails_the_job(jobs, make_plugin):
    jobs.create("noresults", make_plugin("echo forgot the results"))
    status = jobs.wait("noresults", {"Succeeded", "Failed"})
    assert (status["phase"], status["reason"]) == ("Failed", "ResultsMissing")


def test_a_timeout_fails_the_job(jobs, make_plugin):
    jobs.create("slow", make_plugin("sleep 60"), timeoutSeconds=8)
    status = jobs.wait("slow", {"Succeeded", "Failed"})
    assert (status["phase"], status["reason"]) == ("Failed", "Timeout")


def test_a_job_for_a_missing_plugin_fails_clearly(jobs):
    jobs.create("orphan", "no-such-plugin")
    status = jobs.wait("orphan", {"Failed"}, timeout=60)
    assert status["reason"] == "PluginNotFound" and "no-such-plugin" in status["message"]


def test_deleting_its_plugin_does_not_fail_a_running_job(custom, jobs, make_plugin):
    """The job runs the Plugin as admitted (status.pluginSpec): an admin removing or editing the
    Plugin meanwhile changes nothing for it."""
    plugin = make_plugin(
        "sleep 4; echo '{\"results\": {}}' > /circus/out/results.json", resultsSchema={"type": "object"}
    )
    jobs.create("orphaned", plugin)
    jobs.wait("orphaned", {"Running"})
    custom.delete_cluster_custom_object("kubecircus.io", "v1alpha1", "plugins", plugin)
    status = jobs.wait("orphaned", {"Succeeded", "Failed"})
    assert status["phase"] == "Succeeded", status
    assert status["pluginSpec"]["command"][0] == "sh"


def test_a_plugin_reports_progress_that_the_status_follows(jobs, make_plugin):
    script = (
        'for step in 1 2 3 4 5; do echo "CIRCUS_PROGRESS $step/5"; echo working; sleep 5; done; '
        "echo '{}' > /circus/out/results.json"
    )
    jobs.create("progressing", make_plugin(script))
    jobs.wait("progressing", {"Running"})
    seen = set()
    deadline = time.monotonic() + 120
    while (status := jobs.status("progressing")).get("phase") == "Running":
        assert time.monotonic() < deadline, "the job never left Running"
        if status.get("progress") is not None:
            seen.add(status["progress"])
        time.sleep(0.5)
    assert jobs.wait("progressing", {"Succeeded", "Failed"})["phase"] == "Succeeded"
    moving = sorted(v for v in seen if 0.3 < v <= 0.9)
    assert len(moving) >= 2, seen  # it moved while the plug-in ran, within Running's share
    assert moving == sorted(set(moving))
