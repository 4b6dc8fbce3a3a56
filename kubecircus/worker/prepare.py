"""prepare: the plug-in pod's init container. Nothing of the plug-in runs until it passes.

It checks ``in/`` against the staging manifest, empties ``out/`` (a retried run must not collect
a previous attempt's files) and proves the pod is isolated (``isolation.py``) — the checks run
side by side, so the proof's second or so is the whole cost.
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
from .workspace import empty_folder, manifest_problems, read_manifest

log = logging.getLogger(__name__)


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


def run(task: dict[str, Any], workspace: Path, environ: dict[str, str] | None = None) -> Report:
    started = time.monotonic()
    env = dict(os.environ if environ is None else environ)
    doors = isolation.targets(task.get("probes", []), env, isolation.resolv_conf())
    with ThreadPoolExecutor(2) as pool:
        checked = pool.submit(check_workspace, workspace)
        proof = isolation.prove(
            doors,
            float(task.get("probeTimeoutSeconds", 0.5)),
            float(task.get("isolationWaitSeconds", 10.0)),
            float(task.get("isolationSettleSeconds", 0.0)),
        )
        problems = checked.result()
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
    if problems:
        return Report("prepare", "WorkspaceInvalid", "; ".join(problems), details)
    return Report("prepare", message=f"workspace checked; {proof.tried} doors closed", details=details)
