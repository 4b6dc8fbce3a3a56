"""Which PluginJob events reach the engine: a parked job's events cost no API call."""

from __future__ import annotations

import pytest

from kubecircus.operator.handlers import parked

from jobbuilders import JobBuilder


def _body(builder: JobBuilder) -> dict:
    job = builder.build()
    return {
        "metadata": dict(job.metadata),
        "spec": job.spec.model_dump(by_alias=True),
        "status": job.status.model_dump(by_alias=True, exclude_none=True),
    }


@pytest.mark.parametrize(
    ("builder", "is_parked"),
    [
        (JobBuilder("waiting").phase("Queued"), True),
        (JobBuilder("suspended").phase("Queued").spec(suspend=True), True),
        (JobBuilder("cancelled-while-queued").phase("Queued").spec(cancel=True), False),
        (JobBuilder("running").phase("Running"), False),
        (JobBuilder("staging").phase("Staging"), False),
    ],
)
def test_only_a_job_that_waits_and_stays_waiting_is_left_to_the_scheduler(builder, is_parked):
    assert parked(_body(builder)) is is_parked


def test_a_new_job_without_status_is_reconciled_so_it_gets_its_phase():
    body = _body(JobBuilder("new"))
    body.pop("status")
    assert parked(body) is False
