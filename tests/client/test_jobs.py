"""Job names, the body submit creates, the status table and a job's details."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from kubecircus.client import jobs
from kubecircus.operator.api import PluginJob

NOW = datetime(2026, 11, 23, 15, 4, 5, tzinfo=UTC)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def test_the_body_reads_the_uploaded_folder_under_the_namespace():
    prefix = jobs.upload_prefix("radiology-a", "ct-1")
    body = jobs.job_body("ct-1", "radiology-a", "lesions", "dicom", prefix)
    assert prefix == "radiology-a/ct-1/"
    assert body == {
        "apiVersion": "kubecircus.io/v1alpha1",
        "kind": "PluginJob",
        "metadata": {"name": "ct-1", "namespace": "radiology-a"},
        "spec": {
            "plugin": "lesions",
            "inputs": [{"source": {"bucket": "dicom", "prefix": "radiology-a/ct-1/"}}],
        },
    }
    body["metadata"]["uid"] = "u"
    PluginJob.from_body(body)  # what the operator parses


def test_selection_and_priority_go_into_the_input_and_spec():
    body = jobs.job_body(
        "j", "ns", "p", "dicom", "ns/j/", series_uid="1.2.3", slice_range="1:40:2", priority=-3
    )
    assert body["spec"]["inputs"][0] == {
        "source": {"bucket": "dicom", "prefix": "ns/j/"},
        "seriesInstanceUID": "1.2.3",
        "range": "1:40:2",
    }
    assert body["spec"]["priority"] == -3


@pytest.mark.parametrize("prefix", ["other/j/", "ns/../other/", "ns//j/", "ns/*/", "j/"])
def test_the_namespace_rule_is_checked_before_anything_is_sent(prefix):
    with pytest.raises(ValueError, match="s3://dicom/"):
        jobs.job_body("j", "ns", "p", "dicom", prefix)


@pytest.mark.parametrize(
    "plugin", ["lesions", "Lung.Nodules_v2", "a" * 253, "x.y.z", "--", "日本語", "lesion-candidates-2"]
)
def test_generated_names_are_dns_labels_with_the_time(plugin):
    name = jobs.generated_name(plugin, NOW)
    assert DNS_LABEL.match(name), name
    assert jobs.name_problem(name) is None
    assert name.endswith("-20261123-150405")


def test_a_plain_plugin_name_is_kept():
    assert jobs.generated_name("lesions", NOW) == "lesions-20261123-150405"


@pytest.mark.parametrize("name", ["", "A", "a_b", "-a", "a-", "a..b", "a" * 254])
def test_bad_job_names_are_refused(name):
    assert jobs.name_problem(name)


@pytest.mark.parametrize("name", ["a", "ct-1", "ct.1", "a" * 253])
def test_good_job_names_pass(name):
    assert jobs.name_problem(name) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "5s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (3 * 3600 + 60, "3h1m"), (9 * 3600, "9h"),
     (3 * 86400 + 3600, "3d1h"), (20 * 86400, "20d"), (800 * 86400, "2y")],
)  # fmt: skip
def test_ages_read_like_kubectl(seconds, text):
    assert jobs.age(NOW - timedelta(seconds=seconds), NOW) == text


def body(name, created, **status):
    return {
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": created},
        "spec": {"plugin": "lesions"},
        "status": status,
    }


def test_the_table_lists_jobs_oldest_first_with_phase_progress_position_age_reason():
    rows = jobs.table(
        [
            body("b", "2026-11-23T15:03:05Z", phase="Queued", queuePosition=2),
            body("a", "2026-11-23T15:00:05Z", phase="Failed", progress=0.5, reason="ExitCode"),
            {"metadata": {"name": "c", "creationTimestamp": "2026-11-23T15:04:00Z"}, "spec": {"plugin": "x"}},
        ],
        NOW,
    )
    assert rows == [
        ("NAME", "PLUGIN", "PHASE", "PROGRESS", "POSITION", "AGE", "REASON"),
        ("a", "lesions", "Failed", "50%", "", "4m", "ExitCode"),
        ("b", "lesions", "Queued", "", "2", "60s", ""),
        ("c", "x", "", "", "", "5s", ""),
    ]
    text = jobs.format_table(rows)
    assert text.splitlines()[0] == "NAME   PLUGIN    PHASE    PROGRESS   POSITION   AGE   REASON"
    assert text.splitlines()[1] == "a      lesions   Failed   50%                   4m    ExitCode"
    assert all(line == line.rstrip() for line in text.splitlines())


def test_a_suspended_job_without_a_phase_says_so():
    item = body("s", "2026-11-23T15:04:00Z")
    item["spec"]["suspend"] = True
    assert jobs.table_row(item, NOW)[2] == "Suspended"


def test_details_show_what_is_known():
    item = body(
        "a", "2026-11-23T15:00:05Z", phase="Succeeded", reason="Completed", progress=1, exitCode=0,
        outputs={"bucket": "kubecircus", "prefix": "jobs/ns/u/", "fileCount": 2, "totalBytes": 10},
        logRef={"bucket": "kubecircus", "key": "jobs/ns/u/plugin-log.txt"},
    )  # fmt: skip
    item["spec"]["inputs"] = [{"source": {"bucket": "dicom", "prefix": "ns/a/"}, "range": "1:2:1"}]
    rows = dict(jobs.details(item, NOW))
    assert rows["Phase"] == "Succeeded" and rows["Exit code"] == "0" and rows["Progress"] == "100%"
    assert rows["Input 0"] == "s3://dicom/ns/a/ range=1:2:1"
    assert rows["Outputs"] == "s3://kubecircus/jobs/ns/u/ (2 files, 10 bytes in out/)"
    assert rows["Log"] == "s3://kubecircus/jobs/ns/u/plugin-log.txt"
    assert rows["Created"] == "2026-11-23T15:00:05Z (4m ago)"
    assert "Queue position" not in rows
    assert jobs.format_details(jobs.details(item, NOW)).splitlines()[0] == "Name:      a"  # as Namespace:


def test_results_are_printed_as_json():
    assert jobs.results_json({"outputs": {"results": {"n": 1}}}) == '{\n  "n": 1\n}'
    assert jobs.results_json({"outputs": {}}) is None


def test_kubecircus_s_own_bucket_is_never_an_upload_target():
    """With admin keys an upload there could plant another namespace's cached volumes."""
    from kubecircus.client.jobs import job_body

    with pytest.raises(ValueError, match="own bucket"):
        job_body("j", "team-a", "p", "kubecircus", "team-a/j/")
