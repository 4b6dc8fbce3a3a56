"""DICOM series → CIRCUS CS volume (``{id}.mhd``, ``{id}.raw``, ``{id}.json``).

It must not import anything from ``kubecircus.operator``:
the staging pod runs it with only its own dependencies, and the operator process never runs it.

Public API::

    plan = plan_conversion(source, series_uid=None, slice_range=None)   # headers only
    plan.fingerprint                                                    # cache key material
    result = write_volume(plan, outdir, volume_id=0)                   # pixels, atomically
    result = convert(source, outdir, ...)                              # both steps
"""

from .api import ConversionResult, convert, plan_conversion, plan_from_headers, write_volume
from .errors import ConversionError
from .scan import read_header
from .version import CONVERTER_VERSION

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
