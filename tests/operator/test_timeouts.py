"""Calls without limits (issue 8, item 6): every API call times out, and the API server, not the
operator, filters which pods' events reach it."""

from __future__ import annotations

import socket
import threading
import time

import kopf
import pytest
from kopf._cogs.structs.references import Resource  # kopf's own resource type, as its watcher uses
from kubernetes import client

from kubecircus.operator import handlers
from kubecircus.operator.kube import TimedApiClient


def test_a_call_to_an_api_server_that_never_answers_times_out():
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(4)  # accepts (the kernel does), never answers
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{hole.getsockname()[1]}"
    core = client.CoreV1Api(TimedApiClient(configuration, timeout=(0.5, 0.5)))
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            core.list_namespaced_pod("default")
            outcome.append(None)
        except Exception as exc:
            outcome.append(exc)

    started = time.monotonic()
    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(timeout=20)
    hole.close()
    assert not caller.is_alive(), "the call is still waiting"
    assert outcome and outcome[0] is not None and time.monotonic() - started < 20


def test_a_call_given_its_own_timeout_keeps_it():
    seen = []

    class Recorder:  # stands in for the HTTP layer below ApiClient.call_api
        def request(self, method, url, headers=None, body=None, post_params=None, _request_timeout=None):
            seen.append(_request_timeout)
            raise RuntimeError("recorded")

    api = TimedApiClient(client.Configuration(), timeout=(1.0, 2.0))
    api.rest_client = Recorder()
    core = client.CoreV1Api(api)
    for kwargs in ({}, {"_request_timeout": 7}):
        with pytest.raises(RuntimeError, match="recorded"):
            core.list_namespaced_pod("default", **kwargs)
    assert seen == [(1.0, 2.0), 7]


def test_pods_are_filtered_by_the_api_server_and_every_call_has_a_limit():
    settings = kopf.OperatorSettings()
    handlers.configure(settings=settings)
    pods = Resource("", "v1", "pods", namespaced=True)
    jobs = Resource("kubecircus.io", "v1alpha1", "pluginjobs", namespaced=True)
    assert list(settings.watching.label_selectors.collect(pods)) == [
        "kubecircus.io/job-uid,kubecircus.io/role"
    ]
    assert not list(settings.watching.label_selectors.collect(jobs))
    assert settings.networking.request_timeout and settings.networking.connect_timeout
    assert settings.watching.client_timeout and settings.watching.server_timeout
    assert settings.watching.client_timeout > settings.watching.server_timeout


def test_no_single_api_call_outlasts_the_leaders_margin():
    """A write sent just before a leader gives up (its renew deadline) lands or fails before a
    standby may lead (the lease's end): the margin exceeds connect + read timeouts."""
    from kubecircus.operator.kube import REQUEST_TIMEOUT
    from kubecircus.operator.leader import Timing

    timing = Timing()
    assert timing.lease - timing.renew_deadline >= sum(REQUEST_TIMEOUT)
