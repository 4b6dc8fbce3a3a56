"""The job's workspace volume: ``in/`` (volumes), ``out/`` (the plug-in's) and ``manifest.json``.

``manifest.json`` sits at the workspace root, outside both folders the plug-in sees, and records
the size and sha256 of every ``in/`` file; ``prepare`` checks ``in/`` against it before the
plug-in starts. Removal never follows a symbolic link.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
BLOCK = 1 << 20


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def empty_folder(folder: Path) -> None:
    """Remove everything inside ``folder``, however deep, without recursion (a plug-in may have
    nested folders thousands deep). Links are removed, never followed; folders a plug-in made
    unreadable or unwritable are opened up first, as their owner may."""
    stack = [folder]
    while stack:
        current = stack[-1]
        subfolders = []
        for entry in os.scandir(current):
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                os.chmod(path, stat.S_IRWXU)  # not a link (checked above): chmod cannot escape
                subfolders.append(path)
            else:
                path.unlink()
        if subfolders:
            stack.extend(subfolders)
            continue
        stack.pop()
        if current != folder:
            current.rmdir()


def reset_workspace(workspace: Path) -> None:
    """Fresh ``in/`` and ``out/``: a retried step may find a previous attempt's files."""
    (workspace / MANIFEST).unlink(missing_ok=True)
    for name in ("in", "out"):
        folder = workspace / name
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            folder.unlink()
        folder.mkdir(mode=0o755, exist_ok=True)
        os.chmod(folder, 0o775 if name == "out" else 0o755)  # a plug-in may have locked out/
        empty_folder(folder)


def write_manifest(
    workspace: Path,
    inputs: list[dict[str, Any]],
    known: dict[str, str] | None = None,
    attempt: int | None = None,
) -> dict[str, Any]:
    """Record every in/ file; ``known`` sha256s (by file name) spare hashing them again. Written
    last, whole (a rename): an early plug-in pod takes it, with its ``attempt``, as staging's end."""
    known = known or {}
    files = {}
    for path in sorted((workspace / "in").iterdir()):
        digest = known.get(path.name) or file_digest(path)
        files[f"in/{path.name}"] = {"size": path.stat().st_size, "sha256": digest}
    manifest: dict[str, Any] = {"version": 1, "files": files, "inputs": inputs}
    if attempt is not None:
        manifest["attempt"] = attempt
    temporary = workspace / f".{MANIFEST}.tmp"
    temporary.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    os.replace(temporary, workspace / MANIFEST)
    return manifest


def read_manifest(workspace: Path) -> dict[str, Any]:
    return json.loads((workspace / MANIFEST).read_text())


def run_claim(workspace: Path, attempt: int) -> Path:
    """Where ``claim_run`` marks ``attempt``'s plug-in as started."""
    return workspace / f".run-{attempt}"


def claim_run(workspace: Path, attempt: int) -> bool:
    """Mark ``attempt``'s plug-in as started; False when a pod already did. The mark sits at the
    workspace root, which no plug-in mounts, and outlives the pods: a plug-in pod made again for
    the same attempt (one deleted by hand after its plug-in started) never runs it twice."""
    try:
        os.close(os.open(run_claim(workspace, attempt), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    return True


def manifest_problems(workspace: Path, manifest: dict[str, Any]) -> list[str]:
    """How ``in/`` differs from the manifest (missing, extra, changed files); empty when equal."""
    problems = []
    expected = manifest.get("files", {})
    present = {f"in/{e.name}": e for e in os.scandir(workspace / "in")}
    for name in sorted(set(present) - set(expected)):
        problems.append(f"{name} is not in the staging manifest")
    for name, info in sorted(expected.items()):
        entry = present.get(name)
        if entry is None:
            problems.append(f"{name} is missing")
            continue
        st = entry.stat(follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            problems.append(f"{name} is not a regular file")
        elif st.st_size != info["size"]:
            problems.append(f"{name} has {st.st_size} bytes, the manifest says {info['size']}")
        elif file_digest(Path(entry.path)) != info["sha256"]:
            problems.append(f"{name} does not match its sha256 in the manifest")
    return problems
