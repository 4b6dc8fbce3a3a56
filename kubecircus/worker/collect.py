"""collect: the plug-in's ``out/`` → the object store, with a manifest.

Runs after the plug-in pod succeeded (success is its exit code, never a file it wrote). Checks
``out/`` as hostile (``outputs.py``), then ``results.json``: present, a regular file within its
size cap, UTF-8 JSON (no NaN), valid against the Plugin's ``resultsSchema``. Then every file is
uploaded under ``jobs/<ns>/<uid>/out/`` with its content type, and ``manifest.json`` last: its
presence means the outputs are complete. Credentials allow writing this job's prefix only.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from minio import Minio

from kubecircus.objectstore import layout
from kubecircus.objectstore.client import put_bytes, retrying, upload
from kubecircus.timestamps import now_stamp

from . import outputs
from .outputs import OutputFile, OutputRefused
from .report import Report, bounded
from .workspace import read_manifest

RESULTS = "results.json"


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def parse_results(data: bytes, schema: dict[str, Any] | None) -> Any:
    """The parsed results; raises OutputRefused(ResultsInvalid) with a bounded message."""
    try:
        results = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise OutputRefused("ResultsInvalid", f"results.json is not UTF-8 (byte {exc.start})") from None
    except ValueError as exc:
        raise OutputRefused("ResultsInvalid", bounded(f"results.json is not JSON: {exc}", 300)) from None
    except RecursionError:
        raise OutputRefused(
            "ResultsInvalid", "results.json nests deeper than a JSON reader follows"
        ) from None
    if schema:
        import jsonschema

        validator_class = jsonschema.validators.validator_for(schema)
        try:
            error = jsonschema.exceptions.best_match(validator_class(schema).iter_errors(results))
        except RecursionError:
            raise OutputRefused("ResultsInvalid", "results.json nests too deep to check") from None
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
            raise OutputRefused(
                "ResultsInvalid",
                bounded(f"results.json does not match the plug-in's schema at {where}: {error.message}", 400),
            )
    return results


#: Content types stored as such; anything a browser would run (HTML, SVG, scripts) is stored as
#: application/octet-stream, so outputs served from the store can never act as a web page.
SAFE_TYPES = frozenset(
    {
        "application/json",
        "application/pdf",
        "application/dicom",
        "application/gzip",
        "application/zip",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/tiff",
        "image/bmp",
        "text/plain",
        "text/csv",
        "video/mp4",
    }
)


def content_type(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed if guessed in SAFE_TYPES else "application/octet-stream"


def _read_results(root: Path, files: list[OutputFile], limit: int) -> tuple[OutputFile, bytes]:
    item = next((f for f in files if f.parts == (RESULTS,)), None)
    if item is None:
        raise OutputRefused("ResultsMissing", "the plug-in wrote no /circus/out/results.json")
    if item.size > limit:
        raise OutputRefused(
            "ResultsInvalid", f"results.json is {item.size} bytes; at most {limit} are accepted"
        )
    with outputs.open_output(root, item) as fd:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    return item, b"".join(chunks)


def run(task: dict[str, Any], store: Minio, bucket: str, workspace: Path) -> Report:
    started = time.monotonic()
    out = workspace / "out"
    limits = outputs.Limits(
        max_files=int(task.get("maxFiles", 10000)),
        max_bytes=int(task.get("maxBytes", 1 << 30)),
        max_depth=int(task.get("maxDepth", 32)),
    )
    budget = float(task.get("retrySeconds", 120))
    namespace, uid = task["namespace"], task["uid"]
    try:
        files = outputs.scan(out, limits)
        results_file, data = _read_results(out, files, int(task.get("maxResultsBytes", 4 << 20)))
        parse_results(data, task.get("resultsSchema"))
    except OutputRefused as refused:
        return Report("collect", refused.reason, str(refused))

    def put(item: OutputFile) -> dict[str, Any]:
        key = layout.output_key(namespace, uid, item.name)
        kind = content_type(item.name)

        def call() -> str:
            with outputs.open_output(out, item) as fd, os.fdopen(os.dup(fd), "rb") as source:
                return upload(store, bucket, key, source, item.size, kind)

        return {
            "name": item.name,
            "size": item.size,
            "sha256": retrying(call, budget, f"uploading {key}"),
            "contentType": kind,
        }

    with ThreadPoolExecutor(8, thread_name_prefix="upload") as pool:
        listed = list(pool.map(put, files))
    total = sum(f.size for f in files)
    try:
        staged = read_manifest(workspace).get("inputs", [])
    except (OSError, ValueError):
        staged = []
    manifest = {
        "version": 1,
        **task.get("manifest", {}),
        "inputs": staged,
        "outputs": listed,
        "fileCount": len(listed),
        "totalBytes": total,
        "log": layout.PLUGIN_LOG,
        "collected": now_stamp(),
    }
    key = layout.job_prefix(namespace, uid) + layout.MANIFEST
    body = json.dumps(manifest, indent=1, sort_keys=True).encode()
    retrying(
        lambda: put_bytes(store, bucket, key, body, "application/json"), budget, "uploading the manifest"
    )
    # recorded in the job's status by the operator: anyone can check the stored manifest later
    manifest_sha256 = hashlib.sha256(body).hexdigest()
    return Report(
        "collect",
        message=f"{len(listed)} files, {total} bytes",
        details={
            "seconds": round(time.monotonic() - started, 2),
            "files": len(listed),
            "bytes": total,
            "resultsBytes": results_file.size,
            "manifestSha256": manifest_sha256,
        },
    )
