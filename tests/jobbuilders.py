"""Test builders for PluginJobs, Plugins and observed pods (in the spirit of Kueue's wrappers)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from kubecircus.operator.actions import Create, Delete, PatchStatus
from kubecircus.operator.api import Plugin, PluginJob
from kubecircus.operator.config import OperatorConfig
from kubecircus.operator.decide import reconcile
from kubecircus.operator.observe import Children, ContainerView, PodView

_serial = itertools.count(1)


class JobBuilder:
    def __init__(
        self, name: str | None = None, plugin: str = "lesion", namespace: str = "team", uid: str | None = None
    ) -> None:
        n = next(_serial)
        self.body: dict[str, Any] = {
            "metadata": {
                "name": name or f"job{n}",
                "namespace": namespace,
                "uid": uid or f"uid-{n}",
                "creationTimestamp": f"2026-01-01T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z",
                "annotations": {},
            },
            "spec": {
                "plugin": plugin,
                "inputs": [{"source": {"bucket": "dicom", "prefix": f"{namespace}/s1/"}}],
            },
            "status": {},
        }

    def spec(self, **fields: Any) -> JobBuilder:
        self.body["spec"].update(fields)
        return self

    def status(self, **fields: Any) -> JobBuilder:
        self.body["status"].update(fields)
        return self

    def phase(self, phase: str, **fields: Any) -> JobBuilder:
        return self.status(phase=phase, **fields)

    def created(self, stamp: str) -> JobBuilder:
        self.body["metadata"]["creationTimestamp"] = stamp
        return self

    def annotate(self, key: str, value: str) -> JobBuilder:
        self.body["metadata"]["annotations"][key] = value
        return self

    def build(self) -> PluginJob:
        return PluginJob.from_body(self.body)


def plugin(name: str = "lesion", **spec: Any) -> Plugin:
    return Plugin.from_body(
        {"metadata": {"name": name}, "spec": {"image": "localhost/p:dev", "version": "1.0.0", **spec}}
    )


def pod(name: str, phase: str = "Running", reason: str | None = None, **containers: ContainerView) -> PodView:
    return PodView(
        name=name,
        phase=phase,
        reason=reason,
        containers=tuple(c for k, c in containers.items() if k != "prepare"),
        init_containers=tuple(c for k, c in containers.items() if k == "prepare"),
    )


def exited(name: str, code: int, reason: str | None = None, message: str | None = None) -> ContainerView:
    return ContainerView(name=name, exit_code=code, terminated_reason=reason, message=message)


# --- deciding -------------------------------------------------------------------------------

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
CONFIG = OperatorConfig(identity="test", store_endpoint="store:9000")
NO_CHILDREN = Children()


def decide(job, children=NO_CHILDREN, plug=None, config=CONFIG, no_plugin=False):
    return reconcile(job, None if no_plugin else plug or plugin(), children, config, NOW).actions


def statuses(actions):
    return [a.patch for a in actions if isinstance(a, PatchStatus)]


def phase_of(actions):
    phases = [p.get("phase") for p in statuses(actions) if "phase" in p]
    return phases[-1] if phases else None


def created_kinds(actions):
    return [(a.manifest["kind"], a.manifest["metadata"]["name"]) for a in actions if isinstance(a, Create)]


def deleted(actions):
    return {(a.kind, a.name) for a in actions if isinstance(a, Delete)}
