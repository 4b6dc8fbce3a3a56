"""Finding DICOM images under a folder and reading their headers (never their pixels).

Headers are read with the pixel data deferred, so scanning a 300-slice CT touches a few KB per
file. Each image becomes a :class:`SliceHeader`: the geometry and pixel-format facts the rest of
the converter decides on, plus the summary of its tags for the tag dump (``dump.py``).

Parsing a header is pure Python (about 1 ms a file, holding the GIL), the largest cost of a large
series, so :func:`scan` hands large folders to worker processes (``parallel.py``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from .dump import TagSummary, summarize, with_first_identities
from .errors import DamagedFileError, NoImagesError
from .parallel import map_chunks, plan_workers

log = logging.getLogger(__name__)

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
PIXEL_DATA = 0x7FE00010
#: Uncompressed little-endian transfer syntaxes whose pixel bytes can be read straight from the file.
NATIVE_LITTLE_ENDIAN = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
_DEFER_SIZE = 4096
#: The tags ``slice_thickness`` may read, in the order it reads them.
_THICKNESS_TAGS = ((0x00180088, "SpacingBetweenSlices"), (0x00180050, "SliceThickness"))
#: Files a worker parses per task: small enough to share the work out evenly, large enough that a
#: task's entries shared between files are pickled once.
_CHUNK_FILES = (8, 32)


@dataclass(frozen=True)
class SliceHeader:
    """What the converter needs to know about one single-frame image file."""

    path: Path
    series_uid: str
    sop_uid: str
    instance_number: int | None
    position: tuple[float, float, float] | None
    orientation: tuple[float, float, float, float, float, float] | None
    pixel_spacing: tuple[float, float] | None  # (row spacing, column spacing) as in DICOM
    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    samples_per_pixel: int
    photometric: str
    frames: int
    slope: float
    intercept: float
    transfer_syntax: str
    series_description: str
    #: File offset and byte length of native little-endian pixel data (fast read), else None.
    pixel_offset: int | None
    pixel_length: int | None
    #: The parsed file; None when it was parsed in a worker process (only ``tags`` came back).
    dataset: Dataset | None = field(repr=False, compare=False)
    tags: TagSummary = field(repr=False, compare=False)
    #: The z spacing of a one-slice volume (``slice_thickness``), or what reading it raised.
    thickness: float = field(compare=False)
    thickness_error: BaseException | None = field(repr=False, compare=False)

    @property
    def display_name(self) -> str:
        """How a radiographer finds this slice: instance number and file name."""
        number = "?" if self.instance_number is None else str(self.instance_number)
        return f"image {number} ({self.path.name})"


def iter_files(source: Path) -> Iterator[Path]:
    """Every regular file below ``source``, in a stable order (the order never decides geometry)."""
    for root, dirs, files in os.walk(source):
        dirs.sort()
        for name in sorted(files):
            yield Path(root) / name


def _looks_like_dicom(path: Path) -> bool:
    """Part 10 files carry 'DICM' after a 128-byte preamble; anything else is not ours to read."""
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _floats(value: object, count: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        items = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return items if len(items) == count else None


def _int(value: object, default: int | None) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def _native_pixel_location(ds: Dataset, path: Path, transfer_syntax: str) -> tuple[int | None, int | None]:
    """Where the uncompressed pixel bytes sit in the file, checking the file is long enough."""
    raw = ds.get_item(PIXEL_DATA, keep_deferred=True)
    if raw is None:
        return None, None
    tell = getattr(raw, "value_tell", None)
    length = getattr(raw, "length", None)
    if tell is None or length is None or length == 0xFFFFFFFF:
        return None, None
    size = path.stat().st_size
    if tell + length > size:
        raise DamagedFileError(
            f"{path.name} is truncated: its pixel data needs {length} bytes but the file ends "
            f"{tell + length - size} bytes early",
            "re-export or re-send the series from the PACS",
        )
    if transfer_syntax not in NATIVE_LITTLE_ENDIAN:
        return None, None
    return tell, length


def slice_thickness(ds: Dataset) -> tuple[float, list[int]]:
    """SpacingBetweenSlices, else SliceThickness, else 1.0; and the tags it had to decode."""
    decoded = []
    for tag, keyword in _THICKNESS_TAGS:
        if tag in ds:
            decoded.append(tag)
        value = ds.get(keyword)
        with contextlib.suppress(TypeError, ValueError):
            if value is not None and float(value) > 0:
                return float(value), decoded
    return 1.0, decoded


def read_header(
    path: Path, keep_private: frozenset[int] = frozenset(), *, decode_now: bool = False
) -> SliceHeader | None:
    """The header of one file, or None for files that are not DICOM images.

    Not-DICOM files, DICOMDIRs and non-image objects (SR, RT plans, ...) are skipped; a file that
    says it is DICOM but cannot be parsed is damaged input and refused. ``keep_private``: the
    private tags the tag dump will keep (it must be the plan's; see ``dump.for_private``).
    ``decode_now``: decode the dump's values now, for a header that will travel without its
    dataset (``dump.summarize``).
    """
    if not _looks_like_dicom(path):
        log.debug("skipping %s: not a DICOM Part 10 file", path)
        return None
    try:
        ds = pydicom.dcmread(path, defer_size=_DEFER_SIZE)
    except InvalidDicomError:
        log.debug("skipping %s: not DICOM", path)
        return None
    except Exception as exc:  # pydicom raises many kinds for damaged files
        raise DamagedFileError(
            f"{path.name} is a damaged DICOM file ({type(exc).__name__}: {exc})",
            "re-export or re-send the series from the PACS",
        ) from exc
    meta = getattr(ds, "file_meta", Dataset())
    if meta.get("MediaStorageSOPClassUID") == MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in ds:
        log.debug("skipping %s: DICOMDIR", path)
        return None
    if PIXEL_DATA not in ds:
        log.debug("skipping %s: no pixel data", path)
        return None
    transfer_syntax = str(meta.get("TransferSyntaxUID", "1.2.840.10008.1.2"))
    try:
        offset, length = _native_pixel_location(ds, path, transfer_syntax)
        fields = dict(
            path=path,
            series_uid=str(ds.get("SeriesInstanceUID", "")),
            sop_uid=str(ds.get("SOPInstanceUID", "")),
            instance_number=_int(ds.get("InstanceNumber"), None),
            position=_floats(ds.get("ImagePositionPatient"), 3),  # type: ignore[arg-type]
            orientation=_floats(ds.get("ImageOrientationPatient"), 6),  # type: ignore[arg-type]
            pixel_spacing=_floats(ds.get("PixelSpacing"), 2),  # type: ignore[arg-type]
            rows=int(ds.Rows),
            columns=int(ds.Columns),
            bits_allocated=int(ds.BitsAllocated),
            bits_stored=int(ds.get("BitsStored", ds.BitsAllocated)),
            pixel_representation=int(ds.get("PixelRepresentation", 0)),
            samples_per_pixel=int(ds.get("SamplesPerPixel", 1)),
            photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip(),
            frames=_int(ds.get("NumberOfFrames"), 1) or 1,
            slope=float(ds.get("RescaleSlope", 1) or 1),
            intercept=float(ds.get("RescaleIntercept", 0) or 0),
            transfer_syntax=transfer_syntax,
            series_description=str(ds.get("SeriesDescription", "")),
            pixel_offset=offset,
            pixel_length=length,
        )
    except DamagedFileError:
        raise
    except (AttributeError, TypeError, ValueError) as exc:
        raise DamagedFileError(
            f"{path.name} lacks or garbles a required image attribute ({exc})",
            "check the file with a DICOM viewer and re-export it",
        ) from exc
    # The dump's identities are taken now, before the thickness is read (see dump.py).
    tags = summarize(ds, keep_private, decode_now)
    thickness_error = None
    try:
        thickness, decoded = slice_thickness(ds)
    except Exception as exc:  # raised by the plan only if this file becomes the first slice
        thickness, decoded, thickness_error = 1.0, [], exc
    tags = with_first_identities(tags, ds, decoded)
    return SliceHeader(
        **fields,  # type: ignore[arg-type]
        dataset=ds,
        tags=tags,
        thickness=thickness,
        thickness_error=thickness_error,
    )


def _read_chunk(paths: list[Path], keep_private: frozenset[int]) -> list[SliceHeader | None]:
    """Worker task: the headers of ``paths``, without the datasets (only the summaries travel)."""
    headers = (read_header(p, keep_private, decode_now=True) for p in paths)
    return [None if h is None else replace(h, dataset=None) for h in headers]


def _read_chunk_here(paths: list[Path], keep_private: frozenset[int]) -> list[SliceHeader | None]:
    """The calling process's share: headers keep their datasets, values are decoded when used."""
    return [read_header(p, keep_private) for p in paths]


def _read_all(files: list[Path], keep_private: frozenset[int]) -> list[SliceHeader | None]:
    """Every file's header, in order; in worker processes when the folder is large enough."""
    workers = plan_workers(len(files))
    if workers <= 1:
        return [read_header(p, keep_private) for p in files]
    size = max(_CHUNK_FILES[0], min(_CHUNK_FILES[1], -(-len(files) // (workers * 16))))
    chunks = [files[i : i + size] for i in range(0, len(files), size)]
    log.debug("reading %d headers in %d chunks, %d processes", len(files), len(chunks), workers)
    results: list[SliceHeader | None] = []
    for part in map_chunks(_read_chunk, chunks, workers, keep_private, local=_read_chunk_here):
        results.extend(part)
    return results


def scan(source: Path, keep_private: frozenset[int] = frozenset()) -> list[SliceHeader]:
    """All DICOM images under ``source`` (a folder, searched recursively, or one file)."""
    if not source.exists():
        raise NoImagesError(f"{source} does not exist", "check the path")
    files = [source] if source.is_file() else list(iter_files(source))
    headers = [h for h in _read_all(files, keep_private) if h is not None]
    if not headers:
        raise NoImagesError(
            f"no readable DICOM image in {source} ({len(files)} files looked at)",
            "point SOURCE at the folder holding the series' .dcm files",
        )
    return headers


def transfer_syntax_name(uid: str) -> str:
    """Readable name of a transfer syntax, for messages."""
    return UID(uid).name or uid
