"""Job namespaces can enforce Pod Security `restricted`: every pod the operator makes (stage,
run with its prepare step, collect) passes it, so admins can lock job namespaces down."""

from __future__ import annotations

from e2ekit import INPUTS, Jobs
from kubetest import namespace
from storetest import upload_folder

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def test_a_job_runs_in_a_namespace_enforcing_the_restricted_pod_security_standard(
    core, custom, store, sample_series, make_plugin
):
    with namespace(core, "restricted", RESTRICTED) as ns:
        upload_folder(store, sample_series, INPUTS, f"{ns}/s1/")
        jobs = Jobs(custom, ns)
        jobs.create("locked", make_plugin("ls /circus/in > /dev/null; echo '{}' > /circus/out/results.json"))
        status = jobs.wait("locked", {"Succeeded", "Failed"}, timeout=180)
        assert status["phase"] == "Succeeded", status
