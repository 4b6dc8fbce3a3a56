"""The namespace's converted volumes in the object store (``cache/<ns>/...``, see
``objectstore/layout.py``): fetching an entry into ``in/``, and storing a new one in the
background while the step goes on.

An entry counts only once its ``complete`` marker exists; the marker holds each file's size and
sha256, and a fetched file that does not match is not used (the series is converted again). On
every use the marker is rewritten, so its age is the entry's time since last use (for expiry).
Storing is a saving, never a requirement: a failure is logged and the job goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minio import Minio

if TYPE_CHECKING:
    from kubecircus.converter import ConversionResult

from kubecircus.converter import CONVERTER_VERSION
from kubecircus.converter.mhd import retarget
from kubecircus.objectstore import layout
from kubecircus.objectstore.client import download, put_bytes, read_small, upload
from kubecircus.timestamps import now_stamp

from .workspace import file_digest

log = logging.getLogger(__name__)
Retry = Callable[[Callable[[], Any], str], Any]


def dump(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def now() -> str:
    return now_stamp()


class RawUpload:
    """``volume.raw`` uploaded while the converter writes it: ``feed`` is ``write_volume``'s
    ``tee``, and the store reads the chunks through ``read`` (a multipart upload of unknown
    length). If the upload fails, feeding stops blocking and the caller uploads the file later;
    if the conversion fails, ``abort`` makes the upload fail too, so no partial object is made."""

    ABORT = b"abort"

    def __init__(self, store: Minio, bucket: str, key: str, pool: ThreadPoolExecutor) -> None:
        self.chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=32)
        self.pending = bytearray()
        self.ended = False
        self.future = pool.submit(
            lambda: store.put_object(
                bucket_name=bucket,
                object_name=key,
                data=self,
                length=-1,
                part_size=16 << 20,  # type: ignore[arg-type]
            )
        )

    def feed(self, chunk: bytes | None) -> None:
        while not self.future.done():
            try:
                self.chunks.put(chunk, timeout=0.5)
                return
            except queue.Full:
                continue

    def read(self, size: int = -1) -> bytes:
        while not self.ended and (size < 0 or len(self.pending) < size):
            chunk = self.chunks.get()
            if chunk is None:
                self.ended = True
                break
            if chunk is self.ABORT:
                raise OSError("the conversion failed; the cache upload is abandoned")
            self.pending += chunk  # a bytearray: appending does not copy what is there
        cut = len(self.pending) if size < 0 else min(size, len(self.pending))
        data = bytes(self.pending[:cut])
        del self.pending[:cut]
        return data

    def close(self) -> bool:
        """True when the whole volume reached the store."""
        self.feed(None)
        try:
            self.future.result()
        except Exception as exc:
            log.warning("streaming volume.raw to the cache failed (%s); uploading it again", exc)
            return False
        return True

    def abort(self) -> None:
        self.feed(self.ABORT)
        try:
            self.future.result()
        except Exception:  # expected: the upload was told to fail
            return


class VolumeCache:
    def __init__(self, store: Minio, bucket: str, namespace: str, retry: Retry) -> None:
        self.store, self.bucket, self.namespace, self.retry = store, bucket, namespace, retry
        self._background = ThreadPoolExecutor(1, thread_name_prefix="cache-upload")
        self._streams = ThreadPoolExecutor(1, thread_name_prefix="cache-stream")
        self._pending: list[Future[None]] = []

    def stream_raw(self, key: str) -> RawUpload:
        """Start uploading ``volume.raw`` of entry ``key`` from chunks fed while it is written."""
        return RawUpload(
            self.store, self.bucket, layout.cache_prefix(self.namespace, key) + "volume.raw", self._streams
        )

    def alias(self, digest: str) -> str | None:
        """The entry key a listing led to before, if any."""
        data = self.retry(
            lambda: read_small(self.store, self.bucket, layout.listing_key(self.namespace, digest), 4096),
            "reading the cache alias",
        )
        return (json.loads(data).get("key") or None) if data else None

    def fetch(self, key: str, volume_id: int, inputs: Path) -> tuple[dict[str, Any], dict[str, str]] | None:
        """Lay the entry out as ``in/{id}.*``: (its marker, sha256 of each in/ file), or None."""
        prefix = layout.cache_prefix(self.namespace, key)
        marker = self.retry(
            lambda: read_small(self.store, self.bucket, prefix + layout.COMPLETE, 1 << 16),
            "reading the cache",
        )
        if marker is None:
            return None
        entry = json.loads(marker)
        targets = {
            "volume.raw": f"{volume_id}.raw",
            "volume.json": f"{volume_id}.json",
            "volume.mhd": f"{volume_id}.mhd",
        }
        inputs.mkdir(parents=True, exist_ok=True)
        digests = {}
        for name, target in targets.items():
            path = inputs / target
            sha = self.retry(
                lambda name=name, path=path: download(self.store, self.bucket, prefix + name, path),
                f"fetching {name} from the cache",
            )
            if sha != entry["files"][name]["sha256"]:
                log.warning("cache entry %s: %s does not match its marker; converting again", key, name)
                for other in targets.values():
                    (inputs / other).unlink(missing_ok=True)
                return None
            digests[target] = sha
        mhd = inputs / targets["volume.mhd"]
        mhd.write_text(retarget(mhd.read_text("ascii"), targets["volume.raw"]), "ascii")
        digests[targets["volume.mhd"]] = file_digest(mhd)
        entry["used"] = now()
        self._later(
            lambda: put_bytes(
                self.store, self.bucket, prefix + layout.COMPLETE, dump(entry), "application/json"
            )
        )
        return entry, digests

    def add(
        self, key: str, result: ConversionResult, raw_sent: bool = False
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Describe the new entry now; upload it (the marker last) in the background.
        ``raw_sent``: volume.raw is already in the store (streamed while it was written)."""
        prefix = layout.cache_prefix(self.namespace, key)
        mhd = retarget(result.mhd.read_text("ascii"), "volume.raw").encode("ascii")
        json_sha = file_digest(result.json)
        entry: dict[str, Any] = {
            "key": key,
            "converter": CONVERTER_VERSION,
            "seriesUID": result.series_uid,
            "size": list(result.size),
            "spacing": [round(s, 6) for s in result.spacing],
            "elementType": result.element_type,
            "files": {
                "volume.raw": {"size": result.raw.stat().st_size, "sha256": result.raw_sha256},
                "volume.json": {"size": result.json.stat().st_size, "sha256": json_sha},
                "volume.mhd": {"size": len(mhd), "sha256": hashlib.sha256(mhd).hexdigest()},
            },
            "created": now(),
            "used": now(),
        }

        def send() -> None:
            files = [("volume.json", result.json)] + ([] if raw_sent else [("volume.raw", result.raw)])
            for name, path in files:
                self._upload(prefix + name, path, entry["files"][name])
            self.retry(
                lambda: put_bytes(self.store, self.bucket, prefix + "volume.mhd", mhd, "text/plain"),
                "uploading volume.mhd",
            )
            self.retry(
                lambda: put_bytes(
                    self.store, self.bucket, prefix + layout.COMPLETE, dump(entry), "application/json"
                ),
                "completing the cache entry",
            )

        self._later(send)
        digests = {
            result.raw.name: result.raw_sha256,
            result.json.name: json_sha,
            result.mhd.name: file_digest(result.mhd),
        }
        return entry, digests

    def remember(self, digest: str, key: str) -> None:
        """Point the listing at the entry (after the entry's own uploads: one worker, in order)."""
        self._later(
            lambda: put_bytes(
                self.store,
                self.bucket,
                layout.listing_key(self.namespace, digest),
                dump({"key": key}),
                "application/json",
            )
        )

    def finish(self) -> None:
        """Wait for the background uploads; their failures only cost a future cache miss."""
        for future in self._pending:
            try:
                future.result()
            except Exception as exc:
                log.warning("the volume cache was not updated: %s", exc)
        self._pending.clear()
        self._background.shutdown()
        self._streams.shutdown()

    def _later(self, work: Callable[[], Any]) -> None:
        self._pending.append(self._background.submit(work))

    def _upload(self, key: str, path: Path, info: dict[str, Any]) -> None:
        def call() -> None:
            with path.open("rb") as source:
                if (
                    upload(self.store, self.bucket, key, source, info["size"], "application/octet-stream")
                    != info["sha256"]
                ):
                    raise OSError(f"{path} changed while it was uploaded")

        self.retry(call, f"uploading {key}")
