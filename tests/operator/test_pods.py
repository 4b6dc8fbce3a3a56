"""Pod manifests (kubecircus.operator.pods): what each step's pod says about itself to the node."""

from __future__ import annotations

from kubecircus.operator import pods
from kubecircus.operator.config import OperatorConfig

from jobbuilders import JobBuilder, plugin

CONFIG = OperatorConfig(identity="t", store_endpoint="store:9000")


def test_only_the_trusted_worker_pods_are_let_out_of_network_quarantine():
    job = JobBuilder("j").phase("Staging").build()
    made = {
        "stage": pods.stage_pod(job, plugin(), CONFIG),
        "run": pods.run_pod(job, plugin(), CONFIG, 60),
        "early run": pods.run_pod(job, plugin(), CONFIG, 60, early=True),
        "collect": pods.collect_pod(job, plugin(), CONFIG),
    }
    exempt = {role for role, pod in made.items() if pods.NO_QUARANTINE in pod["metadata"]["annotations"]}
    assert exempt == {"stage", "collect"}
    # every pod still names its job
    assert all(pod["metadata"]["annotations"]["kubecircus.io/job"] == "j" for pod in made.values())
