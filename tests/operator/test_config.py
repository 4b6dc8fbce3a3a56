"""Operator configuration from KUBECIRCUS_* environment variables."""

from __future__ import annotations

import pytest

from kubecircus.operator.config import OperatorConfig


def test_defaults_follow_circus_cs():
    config = OperatorConfig.from_env({"POD_NAME": "op-1"})
    assert config.max_concurrent_jobs == 1 and config.identity == "op-1" and config.leader_election is True


def test_values_are_typed():
    config = OperatorConfig.from_env(
        {
            "KUBECIRCUS_MAX_CONCURRENT_JOBS": "3",
            "KUBECIRCUS_LEADER_ELECTION": "false",
            "KUBECIRCUS_RECONCILE_INTERVAL": "2.5",
            "KUBECIRCUS_WORKER_IMAGE": "w:1",
            "KUBECIRCUS_IDENTITY": "me",
        }
    )
    assert (config.max_concurrent_jobs, config.leader_election, config.reconcile_interval) == (3, False, 2.5)
    assert config.worker_image == "w:1" and config.identity == "me"


@pytest.mark.parametrize(
    "env", [{"KUBECIRCUS_MAX_CONCURRENT_JOBS": "many"}, {"KUBECIRCUS_MAX_ATTEMPTS": "0"}]
)
def test_bad_values_are_refused_by_name(env):
    with pytest.raises(ValueError, match="KUBECIRCUS_MAX"):
        OperatorConfig.from_env(env)


def test_the_input_buckets_may_not_include_kubecircus_own_bucket():
    with pytest.raises(ValueError, match="could then read every tenant's outputs"):
        OperatorConfig.from_env({"KUBECIRCUS_INPUT_BUCKETS": "dicom,kubecircus"})


def test_watch_namespaces_are_read_as_a_set():
    config = OperatorConfig.from_env(
        {"KUBECIRCUS_WATCH_NAMESPACES": " radiology-b,radiology-a,, radiology-b"}
    )
    assert config.watched_namespaces == ("radiology-a", "radiology-b")
    assert OperatorConfig.from_env({}).watched_namespaces == ()  # every namespace
