"""Choosing one series and checking its images can share one voxel grid and pixel format."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable

from .errors import InconsistentSeriesError, SeriesSelectionError, UnsupportedImageError
from .scan import SliceHeader

GRAYSCALE = {"MONOCHROME1", "MONOCHROME2"}


def group_by_series(headers: list[SliceHeader]) -> dict[str, list[SliceHeader]]:
    groups: dict[str, list[SliceHeader]] = defaultdict(list)
    for header in headers:
        groups[header.series_uid].append(header)
    return dict(groups)


def _describe(uid: str, members: list[SliceHeader]) -> str:
    description = members[0].series_description.strip()
    text = f"{uid or '(no SeriesInstanceUID)'} ({len(members)} images"
    return text + (f", '{description}')" if description else ")")


def select_series(headers: list[SliceHeader], series_uid: str | None) -> list[SliceHeader]:
    """The images of the requested series, or of the only series present."""
    groups = group_by_series(headers)
    if series_uid is not None:
        if series_uid not in groups:
            available = "; ".join(_describe(uid, m) for uid, m in groups.items())
            raise SeriesSelectionError(
                f"series {series_uid} is not in the source",
                f"series present: {available}",
            )
        return groups[series_uid]
    if len(groups) > 1:
        listing = "; ".join(
            _describe(uid, m) for uid, m in sorted(groups.items(), key=lambda kv: -len(kv[1]))
        )
        raise SeriesSelectionError(
            f"the source holds {len(groups)} series",
            f"choose one with --series-uid: {listing}",
        )
    return next(iter(groups.values()))


def _mixed(headers: list[SliceHeader], what: str, key: Callable[[SliceHeader], str]) -> None:
    counts = Counter(key(h) for h in headers)
    if len(counts) > 1:
        (common, _), *_rest = counts.most_common()
        odd = next(h for h in headers if key(h) != common)
        raise InconsistentSeriesError(
            f"the series mixes {what}: {odd.display_name} has {key(odd)}, most images have {common}",
            "remove the stray images or export the series again",
        )


def check_images(headers: list[SliceHeader]) -> None:
    """Refuse what CIRCUS CS volumes cannot hold: colour, multi-frame, mixed formats."""
    for header in headers:
        if header.samples_per_pixel != 1 or header.photometric not in GRAYSCALE:
            raise UnsupportedImageError(
                f"{header.display_name} is a colour image ({header.photometric}, "
                f"{header.samples_per_pixel} samples per pixel)",
                "CIRCUS CS plug-ins take grayscale series only; choose a grayscale series",
            )
        if header.frames > 1:
            raise UnsupportedImageError(
                f"{header.display_name} is a multi-frame image ({header.frames} frames)",
                "enhanced/multi-frame objects are not supported; export the series as classic "
                "single-frame images (e.g. the scanner's 'classic DICOM' export)",
            )
    _mixed(headers, "image sizes", lambda h: f"{h.columns}x{h.rows}")
    _mixed(
        headers,
        "pixel types",
        lambda h: f"{h.bits_allocated}-bit {'signed' if h.pixel_representation else 'unsigned'}",
    )
    _mixed(headers, "photometric interpretations", lambda h: h.photometric)
