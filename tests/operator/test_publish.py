"""`make images REGISTRY=... PUSH=1`: the images a real cluster pulls get the names the chart's
defaults expect. Tagging is tested for real (buildah, on the images `make cluster-up` built);
pushing needs a registry, which this machine has not: PUSH=1 is `buildah push` of these tags."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = "registry.invalid/kubecircus-test"  # .invalid: a name that can never resolve
pytestmark = pytest.mark.tools


def _tags() -> set[str]:
    done = subprocess.run(
        ["buildah", "images", "--format", "{{.Name}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
    )
    return set(done.stdout.split())


def test_publish_tags_the_images_under_the_names_the_chart_pulls():
    assert shutil.which("buildah"), "buildah is missing: `make cluster-deps` installs it"
    chart = yaml.safe_load((ROOT / "helm/kubecircus/Chart.yaml").read_text(encoding="utf-8"))
    values = yaml.safe_load((ROOT / "helm/kubecircus/values.yaml").read_text(encoding="utf-8"))
    version = chart["appVersion"]
    wanted = {f"{REGISTRY}/{name}:{version}" for name in ("operator", "worker", "lesion-candidates")}
    done = subprocess.run(
        [str(ROOT / "hack/cluster/images.sh"), "--publish"],
        env={**os.environ, "REGISTRY": REGISTRY, "PUSH": "0"},  # never push from a test
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )
    try:
        assert done.returncode == 0, done.stderr
        assert wanted <= _tags()
        assert "PUSH=1 pushes it" in done.stderr  # nothing was pushed without PUSH=1
    finally:
        for tag in wanted:
            subprocess.run(["buildah", "rmi", tag], capture_output=True, check=False)
    # the chart's defaults pull exactly these names from the project's registry
    for image in (values["operator"]["image"], values["jobs"]["workerImage"]):
        assert image["repository"].rsplit("/", 1)[1] in {"operator", "worker"}
        assert image["tag"] in ("", version)  # "" = the chart's appVersion


def test_publish_without_a_registry_says_what_to_set():
    env = {k: v for k, v in os.environ.items() if k != "REGISTRY"}
    done = subprocess.run(
        [str(ROOT / "hack/cluster/images.sh"), "--publish"],
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )
    assert done.returncode != 0 and "REGISTRY is not set" in done.stderr
