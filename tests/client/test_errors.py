"""Expected failures end as one line and an exit code, never a traceback."""

from __future__ import annotations

import json

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from minio.error import S3Error

from kubecircus import cli
from kubecircus.client import commands
from kubecircus.client.errors import ClientError, api_message, connection_reason, from_api, translate


def api_error(status: int, message: str | None = None, reason: str = "Reason") -> ApiException:
    exc = ApiException(status=status, reason=reason)
    if message is not None:
        exc.body = json.dumps({"kind": "Status", "status": "Failure", "message": message, "code": status})
    return exc


def test_validation_refusals_quote_the_api_server():
    message = (
        'PluginJob.kubecircus.io "j" is invalid: spec.inputs[0].range: Invalid value: "1:2": '
        "spec.inputs[0].range in body should match '^[0-9]+:[0-9]+:-?[1-9][0-9]*$'"
    )
    error = translate(api_error(422, message))
    assert error.message == f"the API server refused the job: {message}"
    assert error.code == 1


def test_a_multi_line_message_becomes_one_line():
    assert (
        from_api(api_error(422, "first\n  second")).message == "the API server refused the job: first second"
    )
    assert str(ClientError("a\nb")) == "a b"


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (403, 'pluginjobs.kubecircus.io is forbidden: User "bob" cannot create', "not allowed: pluginjobs"),
        (401, "Unauthorized", "did not accept your credentials"),
        (404, "the server could not find the requested resource", "no kubecircus.io/v1alpha1 API"),
        (409, 'pluginjobs "j" already exists', 'pluginjobs "j" already exists'),
        (500, "etcd is down", "etcd is down (500)"),
    ],
)
def test_api_statuses_are_worded(status, message, expected):
    assert expected in translate(api_error(status, message)).message


def test_a_status_without_body_falls_back_to_the_reason():
    assert api_message(ApiException(status=502, reason="Bad Gateway")) == "Bad Gateway"
    assert api_message(ApiException(status=502)) == "HTTP 502"


def test_the_websocket_failure_says_the_server_is_unreachable():
    error = translate(ApiException(status=0, reason="Handshake status 403 Forbidden"), "https://k:6443")
    assert (
        error.message
        == "cannot reach the Kubernetes API server at https://k:6443: Handshake status 403 Forbidden"
    )


def test_kubeconfig_problems_are_one_line():
    error = translate(ConfigException("Invalid kube-config file. No configuration found."))
    assert error.message.startswith(
        "no usable kubeconfig (Invalid kube-config file. No configuration found.)"
    )


def test_connection_errors_name_the_server_and_the_cause():
    pool = urllib3.HTTPSConnectionPool("10.0.0.1", 6443)
    refused = urllib3.exceptions.NewConnectionError(
        pool, "<urllib3.connection.HTTPSConnection object at 0x7f00>: Failed to establish a new connection: "
        "[Errno 111] Connection refused"
    )  # fmt: skip
    wrapped = urllib3.exceptions.MaxRetryError(pool, "/apis/kubecircus.io/v1alpha1/plugins/p", refused)
    error = translate(wrapped, "https://10.0.0.1:6443")
    assert (
        error.message == "cannot reach the Kubernetes API server at https://10.0.0.1:6443: Connection refused"
    )
    timeout = urllib3.exceptions.ConnectTimeoutError(
        pool, "Connection to 10.0.0.1 timed out. (connect timeout=5)"
    )
    assert connection_reason(urllib3.exceptions.MaxRetryError(pool, "/", timeout)) == "timed out"


def test_store_refusals_say_which_object_and_hint_at_credentials():
    exc = S3Error(
        None, "AccessDenied", "Access Denied.", "/dicom/ns/j/1.dcm", "r", "h", "dicom", "ns/j/1.dcm"
    )
    message = translate(exc).message
    assert message.startswith("the object store refused dicom/ns/j/1.dcm: AccessDenied: Access Denied.")
    assert "--store-credentials" in message


def test_bugs_are_not_translated():
    assert translate(KeyError("x")) is None


@pytest.mark.parametrize(
    ("raised", "code", "line"),
    [
        (
            api_error(422, "spec.plugin: Required value"),
            1,
            "the API server refused the job: spec.plugin: Required value",
        ),
        (ConfigException("Invalid kube-config file."), 1, "no usable kubeconfig (Invalid kube-config file.)"),
        (ClientError("no Plugin named x; `kubectl get plugins` lists them"), 1, "no Plugin named x"),
        (ClientError("bad address", code=2), 2, "bad address"),
    ],
)
def test_main_prints_one_line_and_exits_with_the_code(monkeypatch, capsys, raised, code, line):
    def failing(args, context, out, console):
        raise raised

    monkeypatch.setitem(commands.__dict__, "status", failing)
    assert cli.main(["status"]) == code
    captured = capsys.readouterr()
    assert captured.err.startswith(f"kubecircus: {line}") and captured.err.count("\n") == 1
    assert "Traceback" not in captured.err and captured.out == ""


def test_an_interrupt_is_one_line_and_130(monkeypatch, capsys):
    def interrupted(args, context, out, console):
        raise KeyboardInterrupt

    monkeypatch.setitem(commands.__dict__, "cancel", interrupted)
    assert cli.main(["cancel", "j", "--wait"]) == 130
    assert capsys.readouterr().err == "kubecircus: interrupted\n"
