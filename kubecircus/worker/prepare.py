"""prepare: the plug-in pod's init container. Nothing of the plug-in runs until it passes.

It checks ``in/`` against the staging manifest, empties ``out/`` (a retried run must not collect
a previous attempt's files) and proves the pod is isolated (``isolation.py``) — the checks run
side by side, so the proof's few seconds are the whole cost. A pod made early, with the stage
pod (``awaitStagingSeconds``), proves its isolation while staging runs and waits for the
manifest of its own attempt before the checks. Every pod claims its attempt in the workspace
(``workspace.claim_run``): the plug-in starts at most once per attempt.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import isolation
from .report import ERROR, Report
from .workspace import claim_run, empty_folder, manifest_problems, read_manifest

log = logging.getLogger(__name__)

#: How often an early pod looks for staging's manifest.
POLL_SECONDS = 0.1


def check_workspace(workspace: Path) -> list[str]:
    try:
        manifest = read_manifest(workspace)
    except (OSError, ValueError) as exc:
        return [f"no readable staging manifest ({exc})"]
    problems = manifest_problems(workspace, manifest)
    out = workspace / "out"
    if out.is_symlink() or not out.is_dir():
        problems.append("out/ is not a folder")
    else:
        os.chmod(out, 0o775)
        empty_folder(out)
    return problems


def await_staging(workspace: Path, attempt: int | None, wait: float) -> str | None:
    """Wait (up to ``wait`` seconds) for the manifest staging writes last, naming ``attempt``;
    None once it is there, else why not. No wait asked: staging is over."""
    if wait <= 0:
        return None
    give_up = time.monotonic() + wait
    while True:
        try:
            if read_manifest(workspace).get("attempt") == attempt:
                return None
        except (OSError, ValueError):
            pass  # not written yet (it appears whole, by a rename)
        if time.monotonic() >= give_up:
            return f"staging did not finish within {wait:.0f} s"
        time.sleep(POLL_SECONDS)


def ready_workspace(workspace: Path, attempt: int | None, wait: float) -> tuple[str | None, list[str]]:
    """Why this pod may not start the plug-in (an infrastructure matter: retried), and what is
    wrong with the workspace (the job's: it fails)."""
    late = await_staging(workspace, attempt, wait)
    if late:
        return late, []
    if attempt is not None and not claim_run(workspace, attempt):
        return f"an earlier pod already started the plug-in of attempt {attempt + 1}", []
    return None, check_workspace(workspace)


def run(task: dict[str, Any], workspace: Path, environ: dict[str, str] | None = None) -> Report:
    started = time.monotonic()
    env = dict(os.environ if environ is None else environ)
    doors = isolation.targets(task.get("probes", []), env, isolation.resolv_conf())
    attempt = task.get("attempt")
    with ThreadPoolExecutor(2) as pool:
        readied = pool.submit(
            ready_workspace,
            workspace,
            attempt if isinstance(attempt, int) else None,
            float(task.get("awaitStagingSeconds", 0)),
        )
        proof = isolation.prove(
            doors,
            float(task.get("probeTimeoutSeconds", 0.5)),
            float(task.get("isolationWaitSeconds", 10.0)),
            float(task.get("isolationSettleSeconds", 0.0)),
        )
        refused, problems = readied.result()
    details = {
        "seconds": round(time.monotonic() - started, 2),
        "doors": proof.tried,
        "rounds": proof.rounds,
        "proofSeconds": proof.seconds,
    }
    if not proof.isolated:
        return Report(
            "prepare",
            "IsolationBreach",
            f"the plug-in pod could reach the network after {proof.seconds} s: "
            + "; ".join(proof.open_doors),
            details,
        )
    if proof.opened:
        return Report(
            "prepare",
            ERROR,  # an infrastructure retry: a new pod, a new address, no connection carried over
            "the network policy took effect only after the pod had started, so connections made "
            "before it may live on; the attempt is retried in a new pod. Open at first: "
            + "; ".join(proof.opened),
            details,
        )
    if refused:
        return Report("prepare", ERROR, refused, details)
    if problems:
        return Report("prepare", "WorkspaceInvalid", "; ".join(problems), details)
    return Report("prepare", message=f"workspace checked; {proof.tried} doors closed", details=details)
