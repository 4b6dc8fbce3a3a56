"""stage: DICOM series in the object store → CIRCUS CS volumes on the job's workspace.

For each input (its index is the volume id):

1. list the objects under its prefix; the listing (keys, ETags, sizes) with the conversion
   options gives a *listing digest*; a cache alias ``cache/<ns>/listings/<digest>`` that names a
   complete cache entry means the series was converted before: the volume is fetched and no
   DICOM is downloaded at all;
2. otherwise download the objects in parallel into the pod's scratch space, parsing each header
   as soon as its file has arrived; plan the conversion (series, range, geometry);
3. the cache key is the plan's fingerprint plus the sha256 of every file the plan uses — the
   content, not only the UIDs, so a crafted file reusing another series' UIDs cannot poison an
   entry; an entry counts only when its ``complete`` marker exists;
4. on a miss convert into ``in/`` and upload the volume to the cache (``complete`` last).

Then ``manifest.json`` at the workspace root records size and sha256 of every ``in/`` file, for
``prepare`` to check before the plug-in starts. A series the converter refuses ends the step
with ``InputInvalid`` and the converter's one-line message.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from minio import Minio
from minio.error import S3Error

from kubecircus import converter  # its parsing and pixel code loads only when a series is converted
from kubecircus.converter import CONVERTER_VERSION, ConversionError
from kubecircus.converter.errors import NoImagesError
from kubecircus.objectstore.client import download, retrying

from .cache import VolumeCache, dump
from .report import ERROR, Report
from .workspace import reset_workspace, run_claim, write_manifest

log = logging.getLogger(__name__)


class InputRefused(Exception):
    """The input cannot be staged; the message is for the person who submitted the job."""


@dataclass(frozen=True)
class Limits:
    max_objects: int = 20000
    max_object_bytes: int = 1 << 30
    max_input_bytes: int = 16 << 30
    #: Seconds to keep retrying while the store is unavailable, before giving up (exit 75).
    retry_seconds: float = 120.0
    downloads: int = 8

    @classmethod
    def from_task(cls, task: dict[str, Any]) -> Limits:
        known = {k: task[k] for k in cls.__dataclass_fields__ if k in task}
        return cls(**known)


@dataclass(frozen=True)
class Input:
    volume_id: int
    bucket: str
    prefix: str
    series_uid: str | None
    slice_range: str | None

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


class Stager:
    def __init__(
        self, store: Minio, bucket: str, namespace: str, limits: Limits, workspace: Path, scratch: Path
    ):
        self.store, self.limits = store, limits
        self.inputs_dir = workspace / "in"
        self.workspace, self.scratch = workspace, scratch
        self.cache = VolumeCache(store, bucket, namespace, self._retry)

    def _retry(self, call, what: str):
        return retrying(call, self.limits.retry_seconds, what)

    # --- one input ----------------------------------------------------------------------------

    def stage(self, item: Input) -> tuple[dict[str, Any], dict[str, str]]:
        """Stage one input; returns its details for the report and the sha256 of its in/ files."""
        started = time.monotonic()
        objects = self._list(item)
        digest = listing_digest(item, objects)
        key = self.cache.alias(digest)
        found = self.cache.fetch(key, item.volume_id, self.inputs_dir) if key else None
        if key and found:
            entry, digests = found
            return self._detail(
                item, key, entry, True, sum(f["size"] for f in entry["files"].values()), started
            ), digests
        folder = self.scratch / str(item.volume_id)
        try:
            headers, sums, fetched = self._download(item, objects, folder)
            plan = self._plan(item, headers, len(objects))
            key = content_key(plan.fingerprint, [sums[h.path] for h in plan.slices])
            found = self.cache.fetch(key, item.volume_id, self.inputs_dir)
            hit = found is not None
            if found is None:
                raw = self.cache.stream_raw(key)  # the upload overlaps the conversion
                try:
                    result = converter.write_volume(
                        plan, self.inputs_dir, volume_id=item.volume_id, tee=raw.feed
                    )
                except BaseException:
                    raw.abort()
                    raise
                found = self.cache.add(key, result, raw_sent=raw.close())
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.cache.remember(digest, key)
        entry, digests = found
        return self._detail(item, key, entry, hit, fetched, started), digests

    def _list(self, item: Input) -> list[Any]:
        listed = self._retry(
            lambda: list(
                self.store.list_objects(bucket_name=item.bucket, prefix=item.prefix, recursive=True)
            ),
            f"listing {item.where}",
        )
        objects = [o for o in listed if not o.object_name.endswith("/")]
        if not objects:
            raise InputRefused(
                f"input {item.volume_id}: no objects under {item.where}; upload the series there"
            )
        if len(objects) > self.limits.max_objects:
            raise InputRefused(
                f"input {item.volume_id}: {len(objects)} objects under {item.where}, more than the "
                f"{self.limits.max_objects} accepted; point the prefix at one series"
            )
        for obj in objects:
            if obj.size > self.limits.max_object_bytes:
                raise InputRefused(
                    f"input {item.volume_id}: object {obj.object_name} is {obj.size} bytes, above the "
                    f"{self.limits.max_object_bytes} accepted for one DICOM file; remove it from the prefix"
                )
        total = sum(o.size for o in objects)
        if total > self.limits.max_input_bytes:
            raise InputRefused(
                f"input {item.volume_id}: {total} bytes under {item.where}, above the "
                f"{self.limits.max_input_bytes} accepted; point the prefix at one series"
            )
        return objects

    def _download(self, item: Input, objects: list[Any], folder: Path):
        """Download in parallel; this thread reads each header as soon as its file is complete
        (one parser, so the downloads do not contend for the interpreter lock)."""
        folder.mkdir(parents=True, exist_ok=True)
        headers, digests, fetched = [], {}, 0

        def one(n: int, obj: Any) -> tuple[Path, str, int]:
            path = folder / local_name(n, obj.object_name[len(item.prefix) :])
            try:
                self._retry(
                    lambda: download(self.store, item.bucket, obj.object_name, path, etag=obj.etag),
                    f"downloading {obj.object_name}",
                )
            except S3Error as exc:
                if exc.code == "PreconditionFailed":
                    raise InputRefused(
                        f"input {item.volume_id}: {obj.object_name} changed while the series was being "
                        "staged; run the job again once the upload is complete"
                    ) from None
                raise
            return path, f"{obj.etag}:{obj.size}", obj.size

        with ThreadPoolExecutor(self.limits.downloads, thread_name_prefix="download") as pool:
            futures = [pool.submit(one, n, obj) for n, obj in enumerate(objects)]
            try:
                for future in as_completed(futures):
                    path, sha, size = future.result()
                    digests[path] = sha
                    fetched += size
                    header = converter.read_header(path)
                    if header is not None:
                        headers.append(header)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return headers, digests, fetched

    def _plan(self, item: Input, headers: list[Any], count: int):
        if not headers:
            raise NoImagesError(
                f"no readable DICOM image under {item.where} ({count} objects looked at)",
                "upload the series' .dcm files (DICOM Part 10) under that prefix",
            )
        return converter.plan_from_headers(headers, series_uid=item.series_uid, slice_range=item.slice_range)

    def _detail(self, item: Input, key: str, entry: dict[str, Any], hit: bool, size: int, started: float):
        return {
            "id": item.volume_id,
            "fingerprint": key,
            "cacheHit": hit,
            "size": entry["size"],
            "spacing": entry["spacing"],
            "bytes": size,
            "seconds": round(time.monotonic() - started, 2),
        }


# --- pure helpers ---------------------------------------------------------------------------------


def listing_digest(item: Input, objects: list[Any]) -> str:
    """Names the listing: relative keys, ETags and sizes, with the options and converter version."""
    material = {
        "converter": CONVERTER_VERSION,
        "series": item.series_uid,
        "range": item.slice_range,
        "objects": sorted((o.object_name[len(item.prefix) :], o.etag or "", o.size) for o in objects),
    }
    return hashlib.sha256(dump(material)).hexdigest()


def content_key(fingerprint: str, digests: list[str]) -> str:
    """The cache key: the conversion's fingerprint and the content of every file it reads (the
    objects' ETags, which the downloads pinned with If-Match, and sizes)."""
    return hashlib.sha256(dump({"fingerprint": fingerprint, "files": sorted(digests)})).hexdigest()


def local_name(n: int, relative: str) -> str:
    """A flat, unique file name that still ends with the object's own name, so a converter
    message names the file a radiographer knows (``000012_IM0002.dcm is truncated``). Keys that
    are prefixes of other keys (``a`` and ``a/b``) cannot clash as file and folder."""
    base = PurePosixPath(relative).name
    if base in {"", ".", ".."}:
        base = "object"
    return f"{n:06d}_{base[-100:]}"


# --- the step -----------------------------------------------------------------------------------


def run(task: dict[str, Any], store: Minio, bucket: str, workspace: Path, scratch: Path) -> Report:
    started = time.monotonic()
    limits = Limits.from_task(task.get("limits", {}))
    inputs = [
        Input(i, spec["bucket"], spec.get("prefix", ""), spec.get("seriesInstanceUID"), spec.get("range"))
        for i, spec in enumerate(task["inputs"])
    ]
    for item in inputs:  # the operator checks this too: never read outside the namespace
        if not item.prefix.startswith(f"{task['namespace']}/"):
            return Report(
                "stage", "InputForbidden", f"input {item.volume_id}: {item.where} is outside the namespace"
            )
    attempt = task.get("attempt")
    if not isinstance(attempt, int):
        attempt = None
    elif run_claim(workspace, attempt).exists():
        # an early plug-in pod of this attempt already started on an earlier staging (whose pod
        # then vanished): never rewrite its inputs under it; a new attempt starts afresh
        return Report("stage", ERROR, f"the plug-in of attempt {attempt + 1} already started; retrying")
    reset_workspace(workspace)
    stager = Stager(store, bucket, task["namespace"], limits, workspace, scratch)
    details, digests = [], {}
    try:
        for item in inputs:
            detail, sums = stager.stage(item)
            details.append(detail)
            digests.update(sums)
    except ConversionError as err:
        return Report("stage", "InputInvalid", f"input {item.volume_id} ({item.where}): {err}")
    except InputRefused as err:
        return Report("stage", "InputInvalid", str(err))
    finally:
        stager.cache.finish()  # volumes converted before a refusal are still worth keeping
    write_manifest(workspace, details, digests, attempt)
    total = sum(d["bytes"] for d in details)
    hits = sum(1 for d in details if d["cacheHit"])
    return Report(
        "stage",
        message=f"staged {len(details)} volumes ({hits} from the cache)",
        details={"seconds": round(time.monotonic() - started, 2), "bytes": total, "inputs": details},
    )
