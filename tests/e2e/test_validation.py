"""The API server itself refuses malformed PluginJobs and Plugins (schema and CEL)."""

from __future__ import annotations

import json

import pytest

from e2ekit import GROUP, TOOLBOX, VERSION, job_body
from kubetest import api_error


def _message(error) -> str:
    return json.loads(error.body)["message"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda b: b["spec"].pop("inputs"), "spec.inputs: Required value"),
        (lambda b: b["spec"].update(inputs=[]), "spec.inputs: Invalid value"),
        (lambda b: b["spec"]["inputs"][0].update(range="1-20"), "spec.inputs[0].range"),
        (lambda b: b["spec"].update(priority="high"), "spec.priority: Invalid value"),
        (lambda b: b["spec"].update(priority=5000), "spec.priority: Invalid value: 5000"),
        (lambda b: b["spec"].pop("plugin"), "spec.plugin: Required value"),
        (lambda b: b["spec"]["inputs"][0]["source"].update(bucket="x"), "spec.inputs[0].source.bucket"),
        (
            lambda b: b["spec"].update(invalidated=True),
            "invalidated may be set only once the job has Succeeded",
        ),
        (lambda b: b["spec"].update(timeoutSeconds=0), "spec.timeoutSeconds"),
    ],
)
def test_malformed_jobs_are_refused(custom, ns, change, expected):
    body = job_body("bad", "any")
    change(body)
    error = api_error(custom.create_namespaced_custom_object, GROUP, VERSION, ns, "pluginjobs", body)
    assert error.status == 422
    assert expected in _message(error)


def test_unknown_fields_are_refused_with_strict_validation(custom, ns):
    body = job_body("typo", "any", priorty=3)
    error = api_error(
        custom.create_namespaced_custom_object,
        GROUP,
        VERSION,
        ns,
        "pluginjobs",
        body,
        field_validation="Strict",
    )
    assert 'unknown field "spec.priorty"' in _message(error)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"version": "1.0.0"}, "spec.image: Required value"),
        ({"image": TOOLBOX, "version": "one"}, "spec.version"),
        ({"image": TOOLBOX, "version": "1.0.0", "timeoutSeconds": -5}, "spec.timeoutSeconds"),
        (
            {"image": TOOLBOX, "version": "1.0.0", "resources": {"limits": {"memory": "lots"}}},
            "spec.resources.limits.memory",
        ),
    ],
)
def test_malformed_plugins_are_refused(custom, spec, expected):
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Plugin",
        "metadata": {"name": "bad-plugin"},
        "spec": spec,
    }
    error = api_error(custom.create_cluster_custom_object, GROUP, VERSION, "plugins", body)
    assert error.status == 422
    assert expected in _message(error)


def test_spec_is_frozen_once_admitted_except_the_queue_fields(jobs, make_plugin):
    slow = make_plugin("sleep 3; echo '{}' > /circus/out/results.json")
    jobs.create("frozen", slow)
    jobs.wait("frozen", {"Staging", "Running", "Collecting", "Succeeded"})
    error = api_error(jobs.patch, "frozen", {"spec": {"plugin": "another"}})
    assert error.status == 422 and "only priority, suspend, cancel, invalidated may change" in _message(error)
    error = api_error(jobs.patch, "frozen", {"spec": {"inputs": [{"source": {"bucket": "other"}}]}})
    assert error.status == 422
    jobs.patch("frozen", {"spec": {"priority": 7}})  # allowed
    assert jobs.get("frozen")["spec"]["priority"] == 7


def test_a_queued_job_may_still_be_edited(jobs, make_plugin):
    blocker = make_plugin("sleep 6; echo '{}' > /circus/out/results.json")
    jobs.create("first", blocker)
    jobs.wait("first", {"Staging", "Running"})
    jobs.create("second", blocker, suspend=True)
    jobs.wait("second", {"Queued"})
    fixed = {"bucket": "dicom", "prefix": f"{jobs.ns}/s1/fixed/"}
    jobs.patch("second", {"spec": {"inputs": [{"source": fixed}]}})
    assert jobs.get("second")["spec"]["inputs"][0]["source"] == fixed
