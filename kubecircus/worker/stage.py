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
import json
import logging
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from minio import Minio

from kubecircus.converter import (
    CONVERTER_VERSION,
    ConversionError,
    plan_from_headers,
    read_header,
    write_volume,
)
from kubecircus.converter.errors import NoImagesError
from kubecircus.converter.mhd import retarget
from kubecircus.objectstore import layout
from kubecircus.objectstore.client import download, put_bytes, read_small, retrying, unavailable, upload

from .report import Report
from .workspace import file_digest, reset_workspace, write_manifest

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
        self.store, self.bucket, self.namespace, self.limits = store, bucket, namespace, limits
        self.inputs_dir = workspace / "in"
        self.workspace, self.scratch = workspace, scratch

    def _retry(self, call, what: str):
        return retrying(call, self.limits.retry_seconds, what)

    # --- one input ----------------------------------------------------------------------------

    def stage(self, item: Input) -> dict[str, Any]:
        started = time.monotonic()
        objects = self._list(item)
        digest = listing_digest(item, objects)
        alias = self._retry(
            lambda: read_small(self.store, self.bucket, layout.listing_key(self.namespace, digest), 4096),
            "reading the cache alias",
        )
        if alias is not None:
            key = json.loads(alias).get("key", "")
            entry = self._fetch_cached(item, key) if key else None
            if entry is not None:
                return self._detail(item, key, entry, True, entry["bytes"], started)
        folder = self.scratch / str(item.volume_id)
        try:
            headers, digests, fetched = self._download(item, objects, folder)
            plan = self._plan(item, headers, len(objects))
            key = content_key(plan.fingerprint, [digests[h.path] for h in plan.slices])
            entry = self._fetch_cached(item, key)
            hit = entry is not None
            if entry is None:
                result = write_volume(plan, self.inputs_dir, volume_id=item.volume_id)
                entry = self._store_cache(key, result)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self._store_alias(digest, key)
        return self._detail(item, key, entry, hit, fetched, started)

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
        """Download in parallel, reading each header as soon as its file is complete."""
        folder.mkdir(parents=True, exist_ok=True)
        headers, digests, fetched = [], {}, 0
        lock = threading.Lock()

        def one(n: int, obj: Any):
            path = folder / local_name(n, obj.object_name[len(item.prefix) :])
            path.parent.mkdir(parents=True, exist_ok=True)
            sha = self._retry(
                lambda: download(self.store, item.bucket, obj.object_name, path),
                f"downloading {obj.object_name}",
            )
            header = read_header(path)
            with lock:
                digests[path] = sha
            return header, obj.size

        with ThreadPoolExecutor(self.limits.downloads, thread_name_prefix="download") as pool:
            futures = [pool.submit(one, n, obj) for n, obj in enumerate(objects)]
            try:
                for future in as_completed(futures):
                    header, size = future.result()
                    fetched += size
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
        return plan_from_headers(headers, series_uid=item.series_uid, slice_range=item.slice_range)

    def _fetch_cached(self, item: Input, key: str) -> dict[str, Any] | None:
        """Lay out a complete cache entry as ``in/{id}.*``; None when there is none (or it is bad)."""
        prefix = layout.cache_prefix(self.namespace, key)
        marker = self._retry(
            lambda: read_small(self.store, self.bucket, prefix + layout.COMPLETE, 1 << 16),
            "reading the cache",
        )
        if marker is None:
            return None
        entry = json.loads(marker)
        vid = item.volume_id
        targets = {"volume.raw": f"{vid}.raw", "volume.json": f"{vid}.json", "volume.mhd": f"{vid}.mhd"}
        self.inputs_dir.mkdir(parents=True, exist_ok=True)
        for name, target in targets.items():
            path = self.inputs_dir / target
            sha = self._retry(
                lambda name=name, path=path: download(self.store, self.bucket, prefix + name, path),
                f"fetching {name} from the cache",
            )
            if sha != entry["files"][name]["sha256"]:
                log.warning("cache entry %s: %s does not match its marker; converting again", key, name)
                for other in targets.values():
                    (self.inputs_dir / other).unlink(missing_ok=True)
                return None
        mhd = self.inputs_dir / targets["volume.mhd"]
        mhd.write_text(retarget(mhd.read_text("ascii"), targets["volume.raw"]), "ascii")
        entry["bytes"] = sum(f["size"] for f in entry["files"].values())
        self._touch(prefix, entry)
        return entry

    def _touch(self, prefix: str, entry: dict[str, Any]) -> None:
        """Rewrite the marker: its age is the entry's time since last use, for expiry."""
        marker = {k: v for k, v in entry.items() if k != "bytes"}
        marker["used"] = now()
        try:
            put_bytes(self.store, self.bucket, prefix + layout.COMPLETE, dump(marker), "application/json")
        except Exception as exc:  # an old-looking entry only expires sooner
            log.warning("could not refresh the cache marker %s: %s", prefix, exc)

    def _store_cache(self, key: str, result: Any) -> dict[str, Any]:
        prefix = layout.cache_prefix(self.namespace, key)
        vid = result.volume_id
        files = {
            "volume.raw": self.inputs_dir / f"{vid}.raw",
            "volume.json": self.inputs_dir / f"{vid}.json",
        }
        mhd = retarget(result.mhd.read_text("ascii"), "volume.raw").encode("ascii")
        entry: dict[str, Any] = {
            "key": key,
            "converter": CONVERTER_VERSION,
            "seriesUID": result.series_uid,
            "size": list(result.size),
            "spacing": [round(s, 6) for s in result.spacing],
            "elementType": result.element_type,
            "files": {
                name: {"size": p.stat().st_size, "sha256": file_digest(p)} for name, p in files.items()
            },
            "created": now(),
        }
        entry["files"]["volume.mhd"] = {"size": len(mhd), "sha256": hashlib.sha256(mhd).hexdigest()}
        entry["bytes"] = sum(f["size"] for f in entry["files"].values())
        try:
            with ThreadPoolExecutor(2, thread_name_prefix="upload") as pool:
                jobs = [
                    pool.submit(self._upload_file, prefix + name, path, info)
                    for name, path in files.items()
                    for info in [entry["files"][name]]
                ]
                jobs.append(
                    pool.submit(
                        self._retry,
                        lambda: put_bytes(self.store, self.bucket, prefix + "volume.mhd", mhd, "text/plain"),
                        "uploading volume.mhd",
                    )
                )
                for job in jobs:
                    job.result()
            marker = {k: v for k, v in entry.items() if k != "bytes"}
            self._retry(
                lambda: put_bytes(
                    self.store, self.bucket, prefix + layout.COMPLETE, dump(marker), "application/json"
                ),
                "completing the cache entry",
            )
        except Exception as exc:  # the volume is laid out; caching is only a saving
            if not unavailable(exc):
                log.warning("could not store cache entry %s: %s", key, exc)
            else:
                log.warning("object store unavailable; cache entry %s not stored", key)
        return entry

    def _upload_file(self, key: str, path: Path, info: dict[str, Any]) -> None:
        def call() -> None:
            with path.open("rb") as source:
                if (
                    upload(self.store, self.bucket, key, source, info["size"], "application/octet-stream")
                    != info["sha256"]
                ):
                    raise OSError(f"{path} changed while it was uploaded")

        self._retry(call, f"uploading {key}")

    def _store_alias(self, digest: str, key: str) -> None:
        try:
            put_bytes(
                self.store,
                self.bucket,
                layout.listing_key(self.namespace, digest),
                dump({"key": key}),
                "application/json",
            )
        except Exception as exc:
            log.warning("could not store the cache alias: %s", exc)

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
    """The cache key: the conversion's fingerprint and the content of every file it reads."""
    return hashlib.sha256(dump({"fingerprint": fingerprint, "files": sorted(digests)})).hexdigest()


def local_name(n: int, relative: str) -> str:
    """The object's key below the prefix as a safe relative path (so messages name the file)."""
    parts = PurePosixPath(relative).parts
    if not parts or any(p in {"", ".", ".."} or p.startswith("/") for p in parts) or len(relative) > 200:
        return f"object-{n:06d}"
    return str(PurePosixPath(*parts))


def dump(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the step -----------------------------------------------------------------------------------


def run(task: dict[str, Any], store: Minio, bucket: str, workspace: Path, scratch: Path) -> Report:
    started = time.monotonic()
    limits = Limits.from_task(task.get("limits", {}))
    inputs = [
        Input(i, spec["bucket"], spec.get("prefix", ""), spec.get("seriesInstanceUID"), spec.get("range"))
        for i, spec in enumerate(task["inputs"])
    ]
    reset_workspace(workspace)
    stager = Stager(store, bucket, task["namespace"], limits, workspace, scratch)
    details = []
    for item in inputs:
        try:
            details.append(stager.stage(item))
        except ConversionError as err:
            return Report("stage", "InputInvalid", f"input {item.volume_id} ({item.where}): {err}")
        except InputRefused as err:
            return Report("stage", "InputInvalid", str(err))
    write_manifest(workspace, details)
    total = sum(d["bytes"] for d in details)
    hits = sum(1 for d in details if d["cacheHit"])
    return Report(
        "stage",
        message=f"staged {len(details)} volumes ({hits} from the cache)",
        details={"seconds": round(time.monotonic() - started, 2), "bytes": total, "inputs": details},
    )
