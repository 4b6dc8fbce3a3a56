"""The contract between the worker steps and the operator: an exit code and a small JSON report.

A step writes its report to the container's termination message (``/dev/termination-log``,
at most 4 KiB, which the kubelet copies into the pod status) and exits with the code of its
outcome. The operator reads both back with :func:`decode`; this module is the only producer
and the only parser.

Exit codes (documented in docs/operator.md):

====  ====================  ==========================================================
code  reason                meaning
====  ====================  ==========================================================
0     Done                  the step did its work
3     InputInvalid          the converter refused a series (the job fails)
4     WorkspaceInvalid      the workspace does not match the staging manifest (fails)
5     IsolationBreach       the plug-in pod could reach the network (fails)
6     OutputTooLarge        out/ holds too many files or bytes (fails)
7     OutputInvalid         out/ holds a link, special file, unreadable or unusable name
8     ResultsMissing        no out/results.json (fails)
9     ResultsInvalid        results.json is not UTF-8 JSON, too big, or against the schema
10    InputForbidden        an input outside the job's namespace (the operator checks first)
70    Error                 the step failed unexpectedly (a bug or a misconfiguration)
75    Unavailable           the object store was unreachable (an infrastructure retry)
====  ====================  ==========================================================

Error, Unavailable and any other code (a crash, an OOM kill) are infrastructure retries,
bounded by the operator's maxAttempts; the rest end the job with that reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MAX_REPORT_BYTES = 4096
MAX_MESSAGE_CHARS = 1024
DONE = "Done"
ERROR = "Error"
UNAVAILABLE = "Unavailable"
EXIT_CODES = {
    DONE: 0,
    "InputInvalid": 3,
    "WorkspaceInvalid": 4,
    "IsolationBreach": 5,
    "OutputTooLarge": 6,
    "OutputInvalid": 7,
    "ResultsMissing": 8,
    "ResultsInvalid": 9,
    "InputForbidden": 10,
    ERROR: 70,
    UNAVAILABLE: 75,
}
REASONS = {code: reason for reason, code in EXIT_CODES.items()}
#: Reasons that end the job (the input or the plug-in is at fault); the rest are retried.
JOB_FAULTS = frozenset(EXIT_CODES) - {DONE, ERROR, UNAVAILABLE}
#: Detail fields dropped, in this order, when a report would not fit in MAX_REPORT_BYTES.
_SHED = ("spacing", "size", "seconds", "bytes", "fingerprint")


@dataclass(frozen=True)
class Report:
    step: str
    reason: str = DONE
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.reason == DONE

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.reason]


def bounded(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """One line, at most ``limit`` characters (a marker says when it was cut)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 12] + " [...cut]"


def encode(report: Report) -> str:
    """The report as one JSON line of at most MAX_REPORT_BYTES bytes (UTF-8).

    Detail that does not fit is shed predictably: first per-item fields of lists (inputs),
    then the lists themselves (replaced by their length), then the message is shortened.
    """
    body: dict[str, Any] = {
        "v": 1,
        "step": report.step,
        "reason": report.reason,
        "message": bounded(report.message),
        **report.details,
    }
    text = _dump(body)
    for key in _SHED:
        if len(text.encode()) <= MAX_REPORT_BYTES:
            return text
        for value in body.values():
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, dict):
                        item.pop(key, None)
        text = _dump(body)
    for key, value in list(body.items()):
        if len(text.encode()) <= MAX_REPORT_BYTES:
            return text
        if isinstance(value, list | dict):
            body[key] = len(value)
            text = _dump(body)
    body["message"] = bounded(body["message"], 256)
    text = _dump(body)
    assert len(text.encode()) <= MAX_REPORT_BYTES, "details must be small scalars"
    return text


def _dump(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def decode(step: str, exit_code: int | None, message: str | None) -> Report:
    """What the operator makes of a finished step container.

    The exit code decides the outcome; the report adds the message and details. A report that
    is missing or garbled (the container was killed before writing it) or that contradicts the
    exit code cannot be trusted, and the outcome is then the exit code's alone.
    """
    reason = REASONS.get(exit_code if exit_code is not None else -1)
    body: dict[str, Any] = {}
    if message:
        try:
            parsed = json.loads(message)
            body = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            body = {}
    if reason is None:
        detail = bounded(message or "", 300) if not body else bounded(str(body.get("message", "")), 300)
        return Report(step, ERROR, f"the {step} step exited with code {exit_code}: {detail}".strip(" :"))
    if body.get("reason") != reason or body.get("step") != step:
        return Report(step, reason, f"the {step} step ended with {reason} (no report)")
    details = {k: v for k, v in body.items() if k not in {"v", "step", "reason", "message"}}
    return Report(step, reason, bounded(str(body.get("message", ""))), details)
