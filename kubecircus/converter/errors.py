"""Refusals a radiographer can act on.

Every refusal is a :class:`ConversionError` carrying a one-line message that says what is wrong
with the *input* and what to do about it (in the spirit of pydicom's errors with recovery hints).
The command line prints exactly that line and exits non-zero; the staging pod copies it into the
PluginJob's ``status.message`` with ``reason`` set to the error's ``reason`` (``InputInvalid``).
"""

from __future__ import annotations


class ConversionError(Exception):
    """The input cannot become a CIRCUS CS volume. ``str(err)`` is the one-line message."""

    #: Machine-readable reason, used as the PluginJob status reason.
    reason = "InputInvalid"

    def __init__(self, problem: str, hint: str = "") -> None:
        self.problem = problem
        self.hint = hint
        message = problem if not hint else f"{problem}; {hint}"
        super().__init__(" ".join(message.split()))


class NoImagesError(ConversionError):
    """No readable grayscale DICOM image in the source."""


class UnsupportedImageError(ConversionError):
    """Colour, multi-frame or otherwise unsupported images."""


class SeriesSelectionError(ConversionError):
    """Several series and none chosen, or the chosen one is absent."""


class InconsistentSeriesError(ConversionError):
    """Slices that do not form one regular volume (gaps, duplicates, mixed geometry)."""


class RangeError(ConversionError):
    """A ``START:END:DELTA`` range that is malformed or names absent instance numbers."""


class DamagedFileError(ConversionError):
    """A DICOM file that cannot be read completely (truncated, undecodable pixel data)."""
