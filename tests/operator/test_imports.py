"""What each part imports: the pure decisions touch no Kubernetes library, the worker nothing of
the operator, and each image's extra carries only its part."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _modules_after_import(*modules: str) -> set[str]:
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print('\\n'.join(sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8", check=True, cwd=ROOT
    )
    return {name.split(".")[0] for name in done.stdout.split()}


PURE = [
    "kubecircus.operator.decide",
    "kubecircus.operator.steps",
    "kubecircus.operator.transitions",
    "kubecircus.operator.queue",
    "kubecircus.operator.builders",
    "kubecircus.operator.observe",
    "kubecircus.operator.actions",
    "kubecircus.operator.cache",
    "kubecircus.operator.config",
    "kubecircus.objectstore.layout",
    "kubecircus.objectstore.policy",
    "kubecircus.worker.report",
]
WORKER = [
    "kubecircus.worker.main",
    "kubecircus.worker.stage",
    "kubecircus.worker.prepare",
    "kubecircus.worker.collect",
]


def test_the_pure_decision_modules_import_no_kubernetes_library_and_no_store_client():
    loaded = _modules_after_import(*PURE)
    assert not loaded & {"kopf", "kubernetes", "minio", "urllib3", "pydicom"}, loaded


def test_the_worker_imports_nothing_of_the_operator():
    loaded = _modules_after_import(*WORKER)
    assert not loaded & {"kopf", "kubernetes", "pydantic", "prometheus_client"}, loaded
    assert "kubecircus" in loaded


def test_prepare_starts_light():
    """prepare runs in every plug-in pod: it must not pay for the converter's imports."""
    loaded = _modules_after_import("kubecircus.worker.prepare")
    assert not loaded & {"numpy", "pydicom", "minio"}, loaded


def test_stage_loads_the_converter_only_to_convert():
    """A series served from the cache never pays for pydicom and numpy (half a second a job)."""
    loaded = _modules_after_import(
        "kubecircus.worker.main", "kubecircus.worker.stage", "kubecircus.worker.cache"
    )
    assert not loaded & {"numpy", "pydicom"}, loaded


@pytest.mark.parametrize(
    ("extra", "forbidden"),
    [("worker", {"kopf", "kubernetes", "pydantic"}), ("operator", {"pydicom", "numpy", "pylibjpeg"})],
)
def test_each_image_extra_leaves_out_the_other_parts_libraries(extra, forbidden):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]

    def names(group: str) -> set[str]:
        found = set()
        for requirement in extras[group]:
            name = requirement.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip().lower()
            if name == "kubecircus":  # kubecircus[converter]: the extras it names
                for inner in requirement.split("[", 1)[1].rstrip("]").split(","):
                    found |= names(inner.strip())
            else:
                found.add(name)
        return found

    assert not names(extra) & forbidden
    assert project["dependencies"] == []
