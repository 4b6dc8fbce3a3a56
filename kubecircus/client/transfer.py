"""Moving files between a folder and the store: parallel, with a rich progress bar on stderr.

Uploads take every regular file under the folder (hidden ones, such as .DS_Store, are left out)
and keep its relative path below the prefix. Downloads refuse any key that would land outside
the target folder (``..``, absolute or empty segments, backslashes, symlinks leading out).
"""

from __future__ import annotations

import logging
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path, PurePosixPath
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from kubecircus.objectstore.client import download, unavailable

from .errors import ClientError, printable
from .store import Store

log = logging.getLogger(__name__)

WORKERS = 8
#: Seconds a single file rides out store outages before the transfer fails.
RETRY_SECONDS = 20.0


class Stopped(Exception):
    """Another file's transfer failed: this one was not (or no longer) attempted."""


def with_retries(call: Callable[[], object], stop: threading.Event, budget: float = RETRY_SECONDS) -> object:
    """``call``, again with backoff while the store is unavailable, for ``budget`` seconds at most;
    gives up as soon as ``stop`` is set (another transfer failed for good)."""
    deadline, pause = time.monotonic() + budget, 0.5
    while True:
        if stop.is_set():
            raise Stopped
        try:
            return call()
        except Exception as exc:
            if not unavailable(exc) or time.monotonic() + pause > deadline:
                raise
            log.info("object store unavailable (%s); retrying in %.1f s", exc, pause)
            if stop.wait(pause):
                raise Stopped from None
            pause = min(pause * 2, 4.0)


def folder_files(folder: Path) -> list[Path]:
    """The files ``submit`` uploads, or a one-line refusal before anything is sent."""
    if not folder.exists():
        raise ClientError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise ClientError(f"{folder} is not a folder: give the folder that holds the series' DICOM files")
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not p.is_symlink()  # a link in a received archive could point at ~/.aws/credentials
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not files:
        raise ClientError(f"{folder} holds no files: nothing to submit")
    return files


def object_keys(folder: Path, files: Iterable[Path], prefix: str) -> list[tuple[Path, str]]:
    return [(path, prefix + path.relative_to(folder).as_posix()) for path in files]


def download_target(directory: Path, prefix: str, key: str) -> Path:
    """Where ``key`` (below ``prefix``) goes in ``directory``; refuses keys that would escape it."""
    relative = key[len(prefix) :] if key.startswith(prefix) else None
    refusal = ClientError(f"refusing to download '{key}': it would land outside {directory}")
    if not relative or relative.startswith("/") or "\\" in relative or "\x00" in relative:
        raise refusal
    parts = relative.split("/")
    if any(part in {"", ".", ".."} for part in parts) or PurePosixPath(relative).is_absolute():
        raise refusal
    if any(part.startswith(".") for part in parts) or any(ord(c) < 0x20 or ord(c) == 0x7F for c in relative):
        # .git/config, .envrc, .vscode/...: a plug-in's hidden files could run commands on this
        # machine once a tool looks into the folder
        raise ClientError(f"refusing to download '{printable(key)}': hidden or control-character names")
    if len(parts[0]) >= 2 and parts[0][1] == ":":  # a drive (C:...) where paths are Windows ones
        raise refusal
    target = directory.joinpath(*parts)
    base = directory.resolve()
    if not target.resolve().is_relative_to(base):  # a symlink inside the folder that leads out
        raise refusal
    return target


def _progress(console: Console, what: str) -> Progress:
    return Progress(
        TextColumn(what, markup=False),
        BarColumn(),
        TextColumn("{task.fields[files]}", markup=False),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _run_parallel(
    what: str,
    tasks: list[tuple[Callable[[], object], int]],
    console: Console,
    on_error: Callable[[BaseException], ClientError],
) -> None:
    """Run the (call, bytes) tasks WORKERS at a time under one progress bar (bytes, files); the
    first failure stops the rest and is raised."""
    count, done_files = len(tasks), 0
    if not tasks:
        return
    stop = threading.Event()
    with (
        _progress(console, what) as progress,
        ThreadPoolExecutor(max_workers=WORKERS) as pool,
    ):
        bar = progress.add_task(what, total=sum(size for _, size in tasks), files=f"0/{count} files")
        futures = {pool.submit(with_retries, call, stop): size for call, size in tasks}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    error = future.exception()
                    if error is not None:
                        if isinstance(error, ClientError):
                            raise error
                        raise on_error(error) from None
                    done_files += 1
                    progress.update(bar, advance=futures[future], files=f"{done_files}/{count} files")
        finally:  # a failure or Ctrl-C: start nothing more, and stop the retries under way
            stop.set()
            for other in pending:
                other.cancel()


def upload_files(store: Store, bucket: str, pairs: list[tuple[Path, str]], console: Console) -> int:
    """Upload every (file, key); returns the bytes sent."""
    sizes = [path.stat().st_size for path, _ in pairs]
    total = sum(sizes)

    def put(path: Path, key: str) -> Callable[[], object]:
        return lambda: store.minio.fput_object(bucket_name=bucket, object_name=key, file_path=str(path))

    tasks = [(put(path, key), size) for (path, key), size in zip(pairs, sizes, strict=True)]
    _run_parallel("uploading", tasks, console, lambda e: store.failure(e, "uploading the series"))
    return total


def list_objects(store: Store, bucket: str, prefix: str) -> list[tuple[str, int]]:
    """(key, size) of every object under ``prefix``."""
    try:
        found = store.minio.list_objects(bucket_name=bucket, prefix=prefix, recursive=True)
        return [(o.object_name, o.size or 0) for o in found if o.object_name and not o.is_dir]
    except Exception as exc:
        raise store.failure(exc, f"listing s3://{bucket}/{prefix}") from None


def download_all(
    store: Store, bucket: str, prefix: str, directory: Path, console: Console
) -> dict[str, tuple[Path, str]]:
    """Every object under ``prefix`` into ``directory``, keeping the key's path below the prefix;
    returns {key below the prefix: (file, sha256)}."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ClientError(f"{directory} is not a new or empty folder: outputs are downloaded into one")
    objects = [(key, size) for key, size in list_objects(store, bucket, prefix) if not key.endswith("/")]
    targets = [download_target(directory, prefix, key) for key, _ in objects]  # all checked first
    folded: dict[str, str] = {}
    for key, _ in objects:  # on macOS or Windows, README and readme are one file
        same = folded.setdefault(unicodedata.normalize("NFC", key).casefold(), key)
        if same != key:
            raise ClientError(
                f"refusing to download: '{printable(same)}' and '{printable(key)}' are one file here"
            )
    digests: dict[str, tuple[Path, str]] = {}

    def get(key: str, target: Path) -> Callable[[], object]:
        def call() -> object:
            target.parent.mkdir(parents=True, exist_ok=True)
            digests[key[len(prefix) :]] = (target, download(store.minio, bucket, key, target))
            return None

        return call

    tasks = [(get(key, target), size) for (key, size), target in zip(objects, targets, strict=True)]
    _run_parallel("downloading", tasks, console, lambda e: store.failure(e, "downloading"))
    return digests


def manifest_mismatches(
    manifest: dict[str, Any], digests: dict[str, str], manifest_sha256: str | None, expected: str | None
) -> list[str]:
    """What differs between the downloaded files and the job's manifest (and the manifest and
    the sha256 the job's status recorded for it): names of files missing or not as listed."""
    problems = []
    if not expected:
        problems.append("manifest.json (the job recorded no sha256 for it)")
    elif manifest_sha256 != expected:
        problems.append("manifest.json (not the one the job recorded)")
    items = manifest.get("outputs") if isinstance(manifest, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return [*problems, "manifest.json (no list of outputs)"]
    listed = set()
    for item in items:
        name = f"out/{item.get('name')}"
        listed.add(name)
        if name not in digests:
            problems.append(f"{name} (missing)")
        elif not item.get("sha256") or digests[name] != item["sha256"]:
            problems.append(f"{name} (sha256 differs)")
    problems += [
        f"{name} (not in the manifest)"
        for name in sorted(digests)
        if name.startswith("out/") and name not in listed
    ]
    return [printable(p, keep="") for p in problems]
