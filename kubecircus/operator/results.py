"""The collect pod's report on out/: each file's size and sha256, and results.json."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CollectReport:
    files: list[dict[str, Any]]
    results_size: int | None
    results: bytes | None
    complete: bool


def parse_collect_log(text: str) -> CollectReport:
    files, size, results, complete = [], None, None, False
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "FILE":
            length, digest, name = rest.split(" ", 2)
            files.append({"name": name, "size": int(length), "sha256": digest})
        elif kind == "RESULTS-SIZE":
            size = int(rest)
        elif kind == "RESULTS64":
            try:
                results = base64.b64decode(rest, validate=True)
            except binascii.Error:
                results = None
        elif kind == "END":
            complete = True
    return CollectReport(files, size, results, complete)
