"""The worker ↔ operator contract: what a step writes is what the operator reads back."""

from __future__ import annotations

import json

import pytest

from kubecircus.worker.report import (
    EXIT_CODES,
    JOB_FAULTS,
    MAX_REPORT_BYTES,
    Report,
    decode,
    encode,
)


@pytest.mark.parametrize("reason", sorted(EXIT_CODES))
def test_every_reason_round_trips_through_exit_code_and_message(reason):
    sent = Report("collect", reason, f"because {reason}", {"files": 3, "bytes": 1024})
    got = decode("collect", sent.exit_code, encode(sent))
    assert got == sent


def test_exit_codes_are_distinct_and_job_faults_exclude_retries():
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)
    assert "Unavailable" not in JOB_FAULTS and "Error" not in JOB_FAULTS and "Done" not in JOB_FAULTS
    assert {"InputInvalid", "IsolationBreach", "OutputTooLarge", "ResultsInvalid"} <= JOB_FAULTS


def test_a_report_of_32_inputs_fits_in_4_kib_by_shedding_detail():
    inputs = [
        {
            "id": i,
            "fingerprint": f"{i:064x}",
            "cacheHit": i % 2 == 0,
            "size": [512, 512, 300],
            "spacing": [0.703125, 0.703125, 1.25],
            "bytes": 157286400,
            "seconds": 12.34,
        }
        for i in range(32)
    ]
    text = encode(Report("stage", message="x" * 5000, details={"inputs": inputs, "seconds": 9.5}))
    assert len(text.encode()) <= MAX_REPORT_BYTES
    body = json.loads(text)
    assert len(body["inputs"]) == 32 and all("cacheHit" in i and "id" in i for i in body["inputs"])
    assert "spacing" not in body["inputs"][0]  # shed first
    assert body["message"].endswith("[...cut]")


def test_unicode_and_newlines_in_messages_stay_within_bounds():
    text = encode(Report("collect", "OutputInvalid", "out/\u00e9\n" * 3000))
    assert len(text.encode()) <= MAX_REPORT_BYTES and "\n" not in text


def test_a_missing_or_garbled_report_falls_back_to_the_exit_code():
    assert decode("stage", 3, None).reason == "InputInvalid"
    assert decode("stage", 3, "Traceback (most recent call last): ...").reason == "InputInvalid"
    # a report that contradicts its exit code is not believed
    forged = encode(Report("stage", "Done"))
    assert decode("stage", 5, forged).reason == "IsolationBreach"
    assert decode("prepare", 0, encode(Report("stage"))).message.endswith("(no report)")


def test_unknown_exit_codes_are_errors_to_retry_with_what_was_said():
    got = decode("stage", 137, "killed")
    assert got.reason == "Error" and "137" in got.message and "killed" in got.message
    assert decode("stage", None, None).reason == "Error"
