"""Content fingerprint of a conversion: the object-store cache key for converted volumes.

It covers everything that decides the output bytes and nothing else: the SOPInstanceUIDs (sorted,
so file names and copy order do not matter), the series, the range, the options and the
converter's format version. Two jobs over the same images with the same options share one
cached volume; any change to the converter's output format changes every key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from .version import CONVERTER_VERSION


def fingerprint(
    sop_uids: Iterable[str],
    series_uid: str,
    slice_range: str | None,
    keep_private: Iterable[int] = (),
) -> str:
    material = {
        "converter": CONVERTER_VERSION,
        "series": series_uid,
        "sops": sorted(sop_uids),
        "range": slice_range,
        "keepPrivate": sorted(f"{t:08x}" for t in keep_private),
    }
    encoded = json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()
