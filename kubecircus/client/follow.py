"""Following a job until it ends: a rich progress bar driven by ``status.progress``, with the
phase and what the job waits for beside it, and one line per phase change."""

from __future__ import annotations

import logging
import time
from typing import Any

import urllib3
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from .errors import ClientError, NotFound, printable
from .jobs import FINISHED
from .kubeapi import Kube

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
#: How long the API server may be unreachable while we follow before we give up.
OUTAGE_SECONDS = 60.0


def note(status: dict[str, Any], spec: dict[str, Any] | None = None) -> str:
    """What a job is waiting for or doing, in a few words."""
    spec = spec or {}
    phase = status.get("phase")
    if not phase:
        return "waiting for the operator to see the job"
    if phase == "Queued":
        if spec.get("suspend"):
            return "suspended (spec.suspend)"
        position = status.get("queuePosition")
        if position is not None:
            return "runs next" if position == 1 else f"position {position} in the queue"
        return status.get("message") or "waiting in the queue"
    return status.get("message") or ""


def phase_line(elapsed: float, status: dict[str, Any]) -> str:
    phase = status.get("phase") or "Submitted"
    reason = f" ({status['reason']})" if status.get("reason") and phase in FINISHED else ""
    message = status.get("message") or ""
    return printable(f"{elapsed:6.1f} s  {phase}{reason}  {message}".rstrip(), keep="")


def follow(
    kube: Kube, name: str, console: Console, timeout: float | None = None, poll: float = POLL_SECONDS
) -> dict[str, Any]:
    """Poll the job until it is Succeeded, Failed or Cancelled; returns its final status."""
    started = time.monotonic()
    last_phase: object = ()  # no phase seen yet (None is a phase: not seen by the operator)
    outage_since: float | None = None
    columns = (
        SpinnerColumn(),
        TextColumn("{task.fields[phase]:<11}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}", markup=False),  # the operator's words, [brackets] and all
    )
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task(name, total=1.0, phase="", note="")
        while True:
            try:
                body = kube.get_job(name)
                outage_since = None
            except NotFound:
                raise ClientError(f"the job {name} was deleted while we followed it") from None
            except (ClientError, urllib3.exceptions.HTTPError) as exc:
                outage_since = outage_since or time.monotonic()
                if time.monotonic() - outage_since > OUTAGE_SECONDS:
                    raise
                log.info("following %s: %s; trying again", name, exc)
                time.sleep(poll)
                continue
            status = body.get("status") or {}
            phase = status.get("phase")
            if phase != last_phase:
                progress.console.print(phase_line(time.monotonic() - started, status), markup=False)
                last_phase = phase
            progress.update(
                bar,
                completed=float(status.get("progress") or 0),
                phase=phase or "Submitted",
                note=note(status, body.get("spec")),
            )
            if phase in FINISHED:
                return status
            if timeout is not None and time.monotonic() - started > timeout:
                raise ClientError(
                    f"{name} did not finish within {timeout:.0f} s; it goes on (kubecircus status {name})"
                )
            time.sleep(poll)
