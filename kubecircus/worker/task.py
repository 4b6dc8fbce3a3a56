"""What a step is asked to do: read from the environment the operator set on its container.

``KUBECIRCUS_TASK`` holds the step's task as JSON (no secrets: credentials are files of the
Secret mounted at ``KUBECIRCUS_CREDENTIALS``); ``KUBECIRCUS_STORE_*`` say where the store is.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CREDENTIALS_DIR = "/var/run/kubecircus/store"


@dataclass(frozen=True)
class Paths:
    workspace: Path
    scratch: Path
    credentials: Path

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Paths:
        env = os.environ if environ is None else environ
        return cls(
            Path(env.get("KUBECIRCUS_WORKSPACE", "/ws")),
            Path(env.get("KUBECIRCUS_SCRATCH", "/scratch")),
            Path(env.get("KUBECIRCUS_CREDENTIALS", CREDENTIALS_DIR)),
        )


def task_from_env(environ: dict[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    raw = env.get("KUBECIRCUS_TASK", "")
    if not raw:
        raise ValueError("KUBECIRCUS_TASK is not set")
    task = json.loads(raw)
    if not isinstance(task, dict):
        raise ValueError("KUBECIRCUS_TASK is not a JSON object")
    return task
