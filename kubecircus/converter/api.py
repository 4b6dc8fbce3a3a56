"""Planning (headers only) and writing (pixels, atomically) a CIRCUS CS volume."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .dump import for_private, series_dump
from .fingerprint import fingerprint
from .geometry import Geometry, SliceRange, build_geometry, order_slices, parse_range
from .mhd import mhd_header
from .parallel import cpu_budget
from .pixels import (
    PixelFormat,
    ValueStats,
    modality_values,
    read_stored,
    type_for_values,
    type_from_headers,
    value_stats,
)
from .raw import RawStream
from .scan import SliceHeader, scan
from .series import check_images, select_series

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConversionPlan:
    """Everything decided from the headers: which slices, in which order, on which grid."""

    slices: list[SliceHeader] = field(repr=False)
    geometry: Geometry
    series_uid: str
    slice_range: SliceRange | None
    keep_private: frozenset[int]
    fingerprint: str


@dataclass(frozen=True)
class ConversionResult:
    """What was written; ``to_dict()`` is what the staging manifest records."""

    volume_id: int
    mhd: Path
    raw: Path
    json: Path
    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    element_type: str
    raw_sha256: str
    fingerprint: str
    series_uid: str
    slice_count: int

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        for key in ("mhd", "raw", "json"):
            data[key] = str(data[key])
        return data


def _thickness(header: SliceHeader) -> float:
    """The first slice's SpacingBetweenSlices or SliceThickness (read with its header)."""
    if header.thickness_error is not None:
        raise header.thickness_error
    return header.thickness


def plan_conversion(
    source: str | os.PathLike[str],
    *,
    series_uid: str | None = None,
    slice_range: str | SliceRange | None = None,
    keep_private: frozenset[int] | set[int] = frozenset(),
) -> ConversionPlan:
    """Scan ``source`` and decide the volume, without reading any pixel data."""
    return plan_from_headers(
        scan(Path(source), frozenset(keep_private)),
        series_uid=series_uid,
        slice_range=slice_range,
        keep_private=keep_private,
    )


def plan_from_headers(
    headers: list[SliceHeader],
    *,
    series_uid: str | None = None,
    slice_range: str | SliceRange | None = None,
    keep_private: frozenset[int] | set[int] = frozenset(),
) -> ConversionPlan:
    """Decide the volume from headers already read (``scan.read_header`` per file), e.g. by a
    caller that parses each file as soon as it has arrived. Pass ``read_header`` the same
    ``keep_private``, or the private tags are looked up again in each file's dataset."""
    parsed_range = parse_range(slice_range) if isinstance(slice_range, str) else slice_range
    chosen = select_series(headers, series_uid)
    check_images(chosen)
    ordered = order_slices(chosen, parsed_range)
    geometry = build_geometry(ordered, _thickness(ordered[0]))
    uid = ordered[0].series_uid
    key = fingerprint(
        (s.sop_uid for s in ordered),
        uid,
        None if parsed_range is None else str(parsed_range),
        keep_private,
    )
    return ConversionPlan(ordered, geometry, uid, parsed_range, frozenset(keep_private), key)  # type: ignore[arg-type]


def _element_type(plan: ConversionPlan) -> str:
    rescales = [(s.slope, s.intercept) for s in plan.slices]
    decided = type_from_headers(PixelFormat.of(plan.slices[0]), rescales)
    if decided is not None:
        return decided
    stats: ValueStats | None = None
    for header in plan.slices:
        slice_stats = value_stats(modality_values(read_stored(header), header.slope, header.intercept))
        stats = slice_stats if stats is None else stats.merge(slice_stats)
    assert stats is not None
    return type_for_values(stats)


def write_volume(
    plan: ConversionPlan,
    outdir: str | os.PathLike[str],
    *,
    volume_id: int = 0,
    tee: Callable[[bytes], None] | None = None,
) -> ConversionResult:
    """Write ``{id}.raw``, ``{id}.json`` and ``{id}.mhd`` into ``outdir``; all three or none.

    Files are written into a private temporary folder inside ``outdir`` and renamed into place
    only once every one of them is complete, so a refusal or crash leaves no ``{id}.*`` behind.
    """
    target = Path(outdir)
    target.mkdir(parents=True, exist_ok=True)
    names = {ext: f"{volume_id}.{ext}" for ext in ("mhd", "raw", "json")}
    staging = Path(tempfile.mkdtemp(prefix=f".{volume_id}.", dir=target))
    moved: list[Path] = []
    try:
        element_type = _element_type(plan)
        # The raw stream runs in background threads; the tag dump is made here meanwhile. Its
        # error, if any, is raised after the stream's, as when the dump came after the raw file.
        stream = RawStream(plan.slices, element_type, staging / names["raw"], tee, min(2, cpu_budget()))
        stream.start()
        dump_text, dump_error = None, None
        try:
            summaries = [for_private(s.tags, s.dataset, plan.keep_private) for s in plan.slices]
            datasets = [s.dataset for s in plan.slices]
            dump_text = json.dumps(series_dump(summaries, datasets), ensure_ascii=False, indent=1) + "\n"
        except Exception as exc:  # raised below, after the stream's own error
            dump_error = exc
        except BaseException:
            stream.abort()
            with contextlib.suppress(Exception):  # the interruption is what is reported
                stream.finish()
            raise
        raw_sha256 = stream.finish()
        if dump_error is not None:
            raise dump_error
        (staging / names["json"]).write_text(dump_text, "utf-8")  # type: ignore[arg-type]
        (staging / names["mhd"]).write_text(mhd_header(plan.geometry, element_type, names["raw"]), "ascii")
        for ext in ("raw", "json", "mhd"):  # the header last: its presence means the volume is whole
            os.replace(staging / names[ext], target / names[ext])
            moved.append(target / names[ext])
    except BaseException:
        for path in moved:
            path.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("wrote %s (%s, %s)", target / names["mhd"], "x".join(map(str, plan.geometry.size)), element_type)
    g = plan.geometry
    return ConversionResult(
        volume_id=volume_id,
        mhd=target / names["mhd"],
        raw=target / names["raw"],
        json=target / names["json"],
        size=g.size,
        spacing=g.spacing,
        origin=g.origin,
        direction=g.direction,
        element_type=element_type,
        raw_sha256=raw_sha256,
        fingerprint=plan.fingerprint,
        series_uid=plan.series_uid,
        slice_count=len(plan.slices),
    )


def convert(
    source: str | os.PathLike[str],
    outdir: str | os.PathLike[str],
    *,
    volume_id: int = 0,
    series_uid: str | None = None,
    slice_range: str | SliceRange | None = None,
    keep_private: frozenset[int] | set[int] = frozenset(),
) -> ConversionResult:
    """Convert the DICOM series under ``source`` into ``outdir/{volume_id}.{mhd,raw,json}``."""
    plan = plan_conversion(source, series_uid=series_uid, slice_range=slice_range, keep_private=keep_private)
    return write_volume(plan, outdir, volume_id=volume_id)
