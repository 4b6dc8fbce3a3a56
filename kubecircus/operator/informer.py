"""Informer-style caches: one LIST, then a WATCH from its resourceVersion, kept in memory.

The scheduler round reads every PluginJob and Plugin from here instead of listing them each
round: a thousand waiting jobs cost the API server one watch connection, not a thousand-item
LIST every few seconds. The operator's own status and finalizer patches are written through
(``remember``) so the next round never counts an admitted job as still waiting (the watch
event for that patch may arrive a moment later); a newer-wins rule keeps an older event that
is still in flight from undoing it.

The cache is a view for deciding *what* to look at. Every write is still guarded by the
resourceVersion the decision was taken on, so a stale cache costs a Conflict and a second
decision, never a wrong write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import urllib3
from kubernetes import watch
from kubernetes.client.rest import ApiException

log = logging.getLogger(__name__)
Key = tuple[str, str]  # (namespace or "", name)
#: Deleted objects remembered, so a patch response that lands after the DELETED event does not
#: bring the object back into the cache.
TOMBSTONES = 1000


def key_of(body: dict[str, Any]) -> Key:
    metadata = body["metadata"]
    return metadata.get("namespace", ""), metadata["name"]


def newer(candidate: str | None, current: str | None) -> bool:
    """Whether ``candidate`` is a later resourceVersion than ``current``. They are opaque to
    clients in principle; etcd's are integers that only grow, and those are compared. Anything
    else (another storage) counts as newer: the latest word wins, as in a plain informer."""
    if not current or not candidate:
        return True
    if candidate.isdigit() and current.isdigit():
        return int(candidate) >= int(current)
    return True


def later(candidate: str | None, reference: str | None) -> bool:
    """Strictly later, and only where that can be known (both are etcd's integers)."""
    if not candidate or not reference or not candidate.isdigit() or not reference.isdigit():
        return False
    return int(candidate) > int(reference)


class Informer:
    """One resource (in one namespace, or cluster-wide) listed once and then watched.

    ``list_call(*args, **kwargs)`` is a kubernetes client list function returning a dict (the
    custom-objects API does); the same function serves the watch. ``on_change`` is called
    (in the informer's thread) after every change the watch brings; keep it cheap.
    """

    def __init__(
        self,
        what: str,
        list_call: Callable[..., Any],
        *args: Any,
        on_change: Callable[[dict[str, Any]], None] | None = None,
        server_timeout: int = 300,
        retry_seconds: float = 2.0,
    ) -> None:
        self.what = what
        self._list_call = list_call
        self._args = args
        self._on_change = on_change
        self._server_timeout = server_timeout
        self._retry_seconds = retry_seconds
        self._items: dict[Key, dict[str, Any]] = {}
        self._gone: OrderedDict[Key, str] = OrderedDict()
        self._lock = threading.Lock()
        self._synced = threading.Event()
        self._version: str | None = None
        self._listed_at: str | None = None  # the version of the last LIST
        self._heard = 0.0  # when the API server last answered this informer

    # --- reading ------------------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        """True once a LIST is in and the API server has answered lately (a list, an event, a
        watch that ran its course). A watch that keeps failing makes the cache unsynced, and
        the scheduler reads the API itself until the informer hears from it again."""
        quiet = time.monotonic() - self._heard
        return self._synced.is_set() and quiet < 2 * self._server_timeout + 60

    def items(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items.values())

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._items.get((namespace, name))

    # --- writing ------------------------------------------------------------------------------

    def remember(self, body: dict[str, Any]) -> None:
        """A body the operator's own write returned: in the cache now, unless the cache already
        holds a later version, or the object was deleted since (a tombstone, or absent from a
        LIST taken after this version: a late answer must not bring a deleted job back)."""
        key, version = key_of(body), body["metadata"].get("resourceVersion")
        with self._lock:
            gone = self._gone.get(key)
            if gone is not None and newer(gone, version):
                return
            current = self._items.get(key)
            if current is None and self._listed_at is not None and not later(version, self._listed_at):
                return  # the last LIST, taken after this write, did not have it: deleted
            self._keep_newer(key, version, body)

    def replace_all(self, bodies: Iterable[dict[str, Any]], version: str | None) -> None:
        """What a LIST brings: the whole cache, and the version the watch resumes from. An
        entry our own write made newer than the LIST is kept (the LIST may have been read
        before the write landed); tombstones stay, bounded."""
        listed = {key_of(b): b for b in bodies}
        with self._lock:
            for key, held in self._items.items():
                held_version = held["metadata"].get("resourceVersion")
                if later(held_version, version):
                    listed[key] = held  # written after the LIST's snapshot: the watch follows it
            self._items = listed
            self._version = self._listed_at = version
            self._heard = time.monotonic()
        self._synced.set()

    def _apply_event(self, kind: str, body: dict[str, Any]) -> None:
        key, version = key_of(body), body["metadata"].get("resourceVersion")
        with self._lock:
            if kind == "DELETED":
                self._items.pop(key, None)
                self._gone[key] = version or ""
                self._gone.move_to_end(key)
                while len(self._gone) > TOMBSTONES:
                    self._gone.popitem(last=False)
            else:
                self._gone.pop(key, None)
                self._keep_newer(key, version, body)
            self._version = version or self._version

    def _keep_newer(self, key: Key, version: str | None, body: dict[str, Any]) -> None:
        """Newer wins (called holding the lock): an older body still in flight never replaces
        a later one."""
        current = self._items.get(key)
        if current is None or newer(version, current["metadata"].get("resourceVersion")):
            self._items[key] = body

    # --- the loop -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """List, then watch until told to stop; a watch that ends is resumed from the last
        version seen, and an expired one (410 Gone) is listed afresh."""
        while not stop.is_set():
            try:
                if self._version is None:
                    self._list()
                self._watch(stop)
            except ApiException as exc:
                if exc.status == 410:
                    log.info("%s: the watch expired; listing afresh", self.what)
                    self._version = None
                    continue
                log.warning("%s: watch failed (%s); retrying", self.what, exc.reason)
                stop.wait(self._retry_seconds)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                log.warning("%s: watch connection failed (%s); retrying", self.what, exc)
                stop.wait(self._retry_seconds)
            except Exception:  # the cache must outlive anything; the scheduler falls back
                log.exception("%s: informer failed; listing afresh", self.what)
                self._version = None
                stop.wait(self._retry_seconds)

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name=f"informer-{self.what}", daemon=True)
        thread.start()
        return thread

    def _list(self) -> None:
        listed = self._list_call(*self._args, _request_timeout=60)
        self.replace_all(listed.get("items", []), listed.get("metadata", {}).get("resourceVersion"))
        log.debug("%s: listed %d", self.what, len(self._items))

    def _watch(self, stop: threading.Event) -> None:
        stream = watch.Watch()
        events = stream.stream(
            self._list_call,
            *self._args,
            resource_version=self._version,
            timeout_seconds=self._server_timeout,
            allow_watch_bookmarks=True,
            _request_timeout=self._server_timeout + 30,
        )
        try:
            for event in events:
                if stop.is_set():
                    return
                if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
                    continue  # a blank or unreadable line: the stream goes on
                self._heard = time.monotonic()
                kind, body = event["type"], event["object"]
                if kind == "BOOKMARK":
                    self._version = body.get("metadata", {}).get("resourceVersion") or self._version
                    continue
                self._apply_event(kind, body)
                if self._on_change is not None:
                    self._on_change(body)
            self._heard = time.monotonic()  # the watch ran its course: the server is there
        finally:
            stream.stop()


class Caches:
    """The operator's informers: PluginJobs (cluster-wide, or one per watched namespace, where
    its namespaced permissions are bound) and Plugins."""

    def __init__(
        self,
        custom: Any,
        group: str,
        version: str,
        namespaces: tuple[str, ...] = (),
        plugins_changed: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        #: namespace ("" for cluster-wide) -> its PluginJob informer
        self._jobs: dict[str, Informer] = {
            ns: Informer(
                f"pluginjobs/{ns}", custom.list_namespaced_custom_object, group, version, ns, "pluginjobs"
            )
            for ns in namespaces
        } or {"": Informer("pluginjobs", custom.list_cluster_custom_object, group, version, "pluginjobs")}
        self.plugin_informer = Informer(
            "plugins", custom.list_cluster_custom_object, group, version, "plugins", on_change=plugins_changed
        )

    @property
    def synced(self) -> bool:
        return self.plugin_informer.synced and all(i.synced for i in self._jobs.values())

    def jobs(self) -> list[dict[str, Any]]:
        return [body for informer in self._jobs.values() for body in informer.items()]

    def plugins(self) -> list[dict[str, Any]]:
        return self.plugin_informer.items()

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        informer = self._jobs.get(namespace) or self._jobs.get("")
        return informer.get(namespace, name) if informer is not None else None

    def plugin(self, name: str) -> dict[str, Any] | None:
        return self.plugin_informer.get("", name)

    def remember_job(self, body: dict[str, Any]) -> None:
        informer = self._jobs.get(body["metadata"].get("namespace", "")) or self._jobs.get("")
        if informer is not None:
            informer.remember(body)

    def start(self, stop: threading.Event) -> None:
        for informer in [*self._jobs.values(), self.plugin_informer]:
            informer.start(stop)
