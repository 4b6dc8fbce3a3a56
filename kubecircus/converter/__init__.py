"""DICOM series → CIRCUS CS volume (``{id}.mhd``, ``{id}.raw``, ``{id}.json``).

It must not import anything from ``kubecircus.operator``:
the staging pod runs it with only its own dependencies, and the operator process never runs it.

Public API::

    plan = plan_conversion(source, series_uid=None, slice_range=None)   # headers only
    plan.fingerprint                                                    # cache key material
    result = write_volume(plan, outdir, volume_id=0)                   # pixels, atomically
    result = convert(source, outdir, ...)                              # both steps
"""

from importlib import import_module
from typing import TYPE_CHECKING

from .errors import ConversionError
from .version import CONVERTER_VERSION

if TYPE_CHECKING:
    from .api import ConversionResult, convert, plan_conversion, plan_from_headers, write_volume
    from .scan import read_header

#: Loaded on first use (PEP 562): a step served from the cache never pays for pydicom and numpy.
_LAZY = {
    "ConversionResult": ".api",
    "convert": ".api",
    "plan_conversion": ".api",
    "plan_from_headers": ".api",
    "write_volume": ".api",
    "read_header": ".scan",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CONVERTER_VERSION",
    "ConversionError",
    "ConversionResult",
    "convert",
    "plan_conversion",
    "plan_from_headers",
    "read_header",
    "write_volume",
]
