"""Which cached volumes to delete: by age since last use, then by total size. Pure.

An entry's ``complete`` marker is rewritten on every cache hit, so its modification time is
the entry's last use. Entries without a marker are uploads that never finished (a stage pod
killed mid-way); they go once they are an hour old.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from kubecircus.objectstore import layout

ORPHAN_AGE = timedelta(hours=1)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
ENTRY_FILES = frozenset({*layout.CACHE_FILES, layout.COMPLETE})


def classify(key: str) -> tuple[str, str, str]:
    """What an object under ``cache/`` is: ("entry", entry prefix, file name), ("alias", key, "")
    or ("junk", key, "") — anything the stage step would never write (stage credentials can
    write under cache/<ns>/, so the sweep deletes whatever does not fit the layout)."""
    parts = key.split("/")
    if len(parts) == 4 and parts[0] == "cache" and _HEX64.match(parts[3]) and parts[2] == "listings":
        return "alias", key, ""
    if len(parts) == 4 and parts[0] == "cache" and _HEX64.match(parts[2]) and parts[3] in ENTRY_FILES:
        return "entry", "/".join(parts[:3]) + "/", parts[3]
    return "junk", key, ""


@dataclass(frozen=True)
class CacheEntry:
    prefix: str
    sizes: dict[str, int] = field(default_factory=dict)
    #: When the complete marker was last written (None: no marker).
    used: datetime | None = None
    #: The newest object's time, for entries without a marker.
    touched: datetime | None = None

    @property
    def bytes(self) -> int:
        return sum(self.sizes.values())

    def add(self, name: str, size: int, modified: datetime) -> CacheEntry:
        used = modified if name == layout.COMPLETE else self.used
        touched = max(self.touched, modified) if self.touched else modified
        return replace(self, sizes={**self.sizes, name: size}, used=used, touched=touched)


def plan_expiry(entries: list[CacheEntry], now: datetime, max_age_seconds: int, max_bytes: int) -> list[str]:
    doomed = [e.prefix for e in entries if e.used is None and e.touched and now - e.touched > ORPHAN_AGE]
    complete = sorted((e for e in entries if e.used is not None), key=lambda e: (e.used, e.prefix))
    if max_age_seconds > 0:
        cutoff = now - timedelta(seconds=max_age_seconds)
        doomed += [e.prefix for e in complete if e.used < cutoff]  # type: ignore[operator]
        complete = [e for e in complete if e.used >= cutoff]  # type: ignore[operator]
    total = sum(e.bytes for e in complete)
    for entry in complete:
        if total <= max_bytes:
            break
        doomed.append(entry.prefix)
        total -= entry.bytes
    return doomed


def expired_aliases(aliases: dict[str, datetime], now: datetime, max_age_seconds: int) -> list[str]:
    """Listing aliases (rewritten on every staging) not used within the age limit."""
    if max_age_seconds <= 0:
        return []
    cutoff = now - timedelta(seconds=max_age_seconds)
    return sorted(key for key, modified in aliases.items() if modified < cutoff)
