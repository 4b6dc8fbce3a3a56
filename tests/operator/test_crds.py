"""The generated CRDs are checked in, current, in both places (`make crds` writes them)."""

from __future__ import annotations

from pathlib import Path

from kubecircus.operator.crdgen import render_all

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "kubecircus"


def test_generated_crds_are_current_in_both_places():
    for name, text in render_all().items():
        assert (ROOT / "crds" / name).read_text() == text, f"crds/{name} is stale: run `make crds`"
        assert (CHART / "crds" / name).read_text() == text, f"chart crds/{name} is stale: run `make crds`"
