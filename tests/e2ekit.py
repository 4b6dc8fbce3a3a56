"""Helpers for end-to-end tests: PluginJobs and Plugins driven through the API server."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

GROUP, VERSION = "kubecircus.io", "v1alpha1"
SYSTEM = "kubecircus-system"
TOOLBOX = "localhost/kubecircus/toolbox:dev"


def job_body(name: str, plugin: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PluginJob",
        "metadata": {"name": name},
        "spec": {"plugin": plugin, "inputs": [{"source": {"bucket": "dicom", "prefix": "s1/"}}], **spec},
    }


class Jobs:
    """PluginJobs in one namespace, the way a user drives them with kubectl."""

    def __init__(self, custom: client.CustomObjectsApi, ns: str) -> None:
        self.custom, self.ns = custom, ns

    def create(self, name: str, plugin: str, **spec: Any) -> dict[str, Any]:
        return self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.ns, "pluginjobs", job_body(name, plugin, **spec)
        )

    def get(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, "pluginjobs", name)

    def patch(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, "pluginjobs", name, body)

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def wait(self, name: str, phases: set[str], timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.status(name)
            if status.get("phase") in phases:
                return status
            time.sleep(0.5)
        raise AssertionError(f"{self.ns}/{name} never reached {phases}; last status: {status}")
