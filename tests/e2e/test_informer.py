"""The informer against the real API server: it lists, follows every change through watches
that end and resume, and keeps the operator's own writes."""

from __future__ import annotations

import threading
import time

from kubecircus.operator.informer import Informer

from e2ekit import GROUP, VERSION, job_body


def eventually(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_the_cache_follows_creates_changes_and_deletes_across_resumed_watches(custom, ns):
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "pluginjobs", job_body("before", "nope", ns))
    # a 2-second server timeout: the watch ends and resumes from its last version many times
    cache = Informer(
        "test", custom.list_namespaced_custom_object, GROUP, VERSION, ns, "pluginjobs", server_timeout=2
    )
    stop = threading.Event()
    thread = cache.start(stop)
    try:
        assert eventually(lambda: cache.synced)
        assert eventually(lambda: cache.get(ns, "before")), "the first LIST missed a job"
        time.sleep(5)  # at least two watches have ended and resumed
        custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, "pluginjobs", job_body("after", "nope", ns)
        )
        assert eventually(lambda: cache.get(ns, "after")), "a resumed watch missed a new job"
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, ns, "pluginjobs", "after", {"metadata": {"labels": {"team": "x"}}}
        )
        assert eventually(lambda: (cache.get(ns, "after")["metadata"].get("labels") or {}).get("team") == "x")

        # our own write is in the cache before its event; an older body never replaces it
        fresh = custom.patch_namespaced_custom_object(
            GROUP, VERSION, ns, "pluginjobs", "after", {"metadata": {"labels": {"team": "y"}}}
        )
        older = cache.get(ns, "after")
        cache.remember(fresh)
        cache.remember(older)
        assert cache.get(ns, "after")["metadata"]["labels"]["team"] == "y"

        custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "pluginjobs", "before")
        assert eventually(lambda: cache.get(ns, "before") is None), "a deleted job stayed in the cache"
        names = {b["metadata"]["name"] for b in cache.items()}
        assert names == {"after"}
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
