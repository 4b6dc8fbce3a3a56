"""Packaging and module boundaries the design card sets."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_converter_never_imports_the_operator():
    offenders = []
    for path in (ROOT / "kubecircus" / "converter").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            offenders += [f"{path.name}: {n}" for n in names if "operator" in n or n.startswith("kubecircus")]
    assert offenders == []


def test_plain_operator_is_still_the_standard_library():
    # -S: no site start-up, so nothing imports the standard operator module before the
    # repository root (the current directory) is first on sys.path.
    code = "import operator; print(operator.__file__); operator.eq"
    done = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
    )
    assert not done.stdout.strip().startswith(str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", "import kubecircus.operator as k; print(k.__name__)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
    )
    assert done.stdout.strip() == "kubecircus.operator"


def test_wheel_maps_the_folders_under_kubecircus(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("kubecircus-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "kubecircus/converter/api.py" in names and "kubecircus/operator/__init__.py" in names
    assert not any(n.startswith(("operator/", "converter/", "tests/")) for n in names)
