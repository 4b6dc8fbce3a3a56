"""`make demo` stays green: its script, run against the deployed operator in a fresh namespace."""

from __future__ import annotations

import subprocess
import sys

from kubetest import ROOT


def test_the_demo_finds_the_phantoms_lesions(ns):
    done = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "demo.py"), "--namespace", ns, "--timeout", "300"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Succeeded" in done.stdout and "lesion candidates: 2" in done.stdout
    assert "#1  voxel (20, 26, " in done.stdout  # the phantom's big nodule (column 20, row 26)
    assert f"s3://kubecircus/jobs/{ns}/" in done.stdout
