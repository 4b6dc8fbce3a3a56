"""Assembling the tag dump (``{id}.json``) from per-file summaries made when the header is read.

Each file's kept tags are summarised right after its header is parsed (:func:`summarize`): the
identity that decides common versus unique (see :func:`tags.identity`) and the decoded value.
A summary is small and plain, so it can be made in a worker process and sent back instead of the
whole pydicom Dataset (pickling a Dataset costs about as much as parsing it again). The parent
then only compares identities and picks values (:func:`series_dump`).

The output is byte-identical to decoding lazily from the datasets, as earlier versions did:
- identities are taken before any value of the file is decoded, as they were;
- a value that fails to decode is kept as the exception and raised only where the dump uses it,
  so a damaged tag refuses the same series at the same point, and one never written is ignored;
- the volume's first slice had its slice spacing read (``_thickness``) before the dump looked at
  it, which turns those elements' identities from bytes into reprs: :attr:`TagSummary.as_first`
  keeps the identities that slice then had.

Decoding the same bytes again gives the same value, so values of plain elements are memoised
per process: a series' common tags are decoded once per worker, not once per file. Equal
entries are also shared objects, which pickle (memoising objects it has seen) sends once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.charset import default_encoding
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from .tags import _kept_vr, _value, charset_of, decode, identity, kept_elements, tag_key

#: Value representations decoded from the bytes alone (plus the character set): no sequences, no
#: ambiguous VRs (resolved from other elements), no binary data.
_MEMO_VRS = frozenset(
    {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "SH", "SL", "SS", "ST"}
    | {"SV", "TM", "UC", "UI", "UL", "UR", "US", "UT", "UV"}
)
#: Bound on the memo and the table of shared entries (a long-running stage step reads many series).
_MEMO_LIMIT = 100_000
_memo: dict[tuple[object, ...], object] = {}
_shared: dict[tuple[object, ...], tuple[object, object]] = {}


@dataclass(frozen=True)
class DecodeFailure:
    """A value that could not be decoded; raised again when the dump needs it."""

    error: BaseException


@dataclass(frozen=True)
class Lazy:
    """A value left to decode when the dump needs it, from the dataset kept in this process."""


LAZY = Lazy()


@dataclass(frozen=True)
class TagSummary:
    """One file's kept tags: tag → (identity, decoded value, :class:`DecodeFailure` or :data:`LAZY`)."""

    keep_private: frozenset[int]
    charset: str
    entries: dict[int, tuple[object, object]]
    #: Entries that differ when the file is the volume's first slice (see the module docstring).
    as_first: dict[int, tuple[object, object]] = field(default_factory=dict)
    #: Raised by ``series_dump`` when reading the identities themselves failed.
    failure: BaseException | None = None


def _encoding(container: Dataset, tag: int) -> object:
    """The character set pydicom decodes ``tag`` of ``container`` with (as ``Dataset.__getitem__``)."""
    if tag == 0x00080005:
        return default_encoding
    encoding = container.original_character_set or container._character_set
    return tuple(encoding) if isinstance(encoding, list) else encoding


def _decoded(
    ds: Dataset, tag: int, keep_private: frozenset[int], found: tuple[Dataset, object] | None = None
) -> object:
    """``tags.decode(ds, tag)``, memoised. ``found``: the container and element ``kept_elements``
    saw, which is the one decoded unless the tag is in both the meta information and the dataset."""
    meta = getattr(ds, "file_meta", None)
    container = meta if meta is not None and (tag >> 16) == 0x0002 else ds
    if found is not None and found[0] is container:
        raw = found[1]
    else:
        raw = container.get_item(tag, keep_deferred=True) if tag in container else None
    key = None
    if isinstance(raw, RawDataElement) and isinstance(raw.value, bytes) and raw.VR in _MEMO_VRS:
        key = (tag, raw.VR, raw.value, raw.is_little_endian, raw.is_implicit_VR, _encoding(container, tag))
        if key in _memo:
            return _memo[key]
    try:
        # A decoded element is what Dataset.__getitem__ would return; a raw one it decodes.
        value = (
            decode(ds, tag, keep_private)
            if raw is None or isinstance(raw, RawDataElement)
            else _value(raw, keep_private)
        )  # type: ignore[arg-type]
    except Exception as exc:  # raised again if the dump uses this value, as before
        return DecodeFailure(exc)
    if key is not None:
        if len(_memo) > _MEMO_LIMIT:
            _memo.clear()
        _memo[key] = value
    return value


def _entry(tag: int, ident: object, value: object) -> tuple[object, object]:
    entry = (ident, value)
    if isinstance(value, str | Lazy):
        key = (tag, ident, value)
        if len(_shared) > _MEMO_LIMIT:
            _shared.clear()
        entry = _shared.setdefault(key, entry)
    return entry


def summarize(ds: Dataset, keep_private: frozenset[int], decode_now: bool = True) -> TagSummary:
    """The dump's view of one freshly read file (before anything but its header fields is decoded).

    ``decode_now``: decode every kept value now (the dataset will not travel with the summary);
    otherwise values are decoded from the dataset only when the dump uses them (as the common
    tags of the first slice and each slice's unique tags), which is cheaper where it stays.
    """
    charset = charset_of(ds)
    try:
        found = kept_elements(ds, keep_private)
    except Exception as exc:  # the dump of a series holding this file fails, as before
        return TagSummary(keep_private, charset, {}, failure=exc)
    if not decode_now:
        return TagSummary(
            keep_private, charset, {tag: _entry(tag, ident, LAZY) for tag, (ident, _, _) in found.items()}
        )
    entries = {
        tag: _entry(tag, ident, _decoded(ds, tag, keep_private, (container, element)))
        for tag, (ident, container, element) in found.items()
    }
    return TagSummary(keep_private, charset, entries)


def with_first_identities(summary: TagSummary, ds: Dataset, tags: list[int]) -> TagSummary:
    """``summary`` plus the identities ``tags`` have now that they are decoded (``as_first``)."""
    if summary.failure is not None:
        return summary
    as_first = {}
    for tag in tags:
        if tag in summary.entries:
            vr = _kept_vr(ds, tag, summary.keep_private)
            if vr is not None:
                as_first[tag] = (identity(ds, tag, vr, summary.charset), summary.entries[tag][1])
    return TagSummary(summary.keep_private, summary.charset, summary.entries, as_first, summary.failure)


def for_private(summary: TagSummary, ds: Dataset | None, keep_private: frozenset[int]) -> TagSummary:
    """``summary`` as if made with another ``keep_private``: private tags are never decoded unless
    kept, so the ones newly kept are still as read and can be summarised now."""
    if summary.keep_private == keep_private or summary.failure is not None:
        return summary
    if ds is None:
        raise ValueError(
            "these headers were summarised in a worker process for another keep_private; "
            "read them again with read_header(path, keep_private=...)"
        )
    entries = {t: e for t, e in summary.entries.items() if (t >> 16) % 2 == 0 or t in keep_private}
    for tag in sorted(keep_private - summary.keep_private):
        if tag in ds and (vr := _kept_vr(ds, tag, keep_private)) is not None:
            entries[tag] = (identity(ds, tag, vr, summary.charset), _decoded(ds, tag, keep_private))
    as_first = {t: e for t, e in summary.as_first.items() if t in entries}
    return TagSummary(keep_private, summary.charset, entries, as_first)


def _pick(entry: tuple[object, object], tag: int, ds: Dataset | None, keep_private: frozenset[int]) -> object:
    value = entry[1]
    if isinstance(value, DecodeFailure):
        raise value.error
    if isinstance(value, Lazy):
        if ds is None:
            raise ValueError("a summary left values to decode but its dataset is gone")
        return decode(ds, tag, keep_private)
    return value


def series_dump(summaries: list[TagSummary], datasets: list[Dataset | None]) -> dict[str, object]:
    """``{"common": {...}, "unique": [...]}``: tags equal in every slice once, the rest per slice.

    ``summaries`` are in the order of the raw data; the first is used with its ``as_first``.
    ``datasets``: each summary's dataset, or None where it was parsed in another process.
    """
    for summary in summaries:
        if summary.failure is not None:
            raise summary.failure
    if not summaries:
        return {"common": {}, "unique": []}
    tables = [summaries[0].entries | summaries[0].as_first] + [s.entries for s in summaries[1:]]
    first = tables[0]
    common_tags = {
        t for t, (ident, _) in first.items() if all(t in o and o[t][0] == ident for o in tables[1:])
    }
    head = (datasets[0], summaries[0].keep_private)
    common = {tag_key(t): _pick(first[t], t, *head) for t in sorted(common_tags)}
    unique = [
        {tag_key(t): _pick(table[t], t, ds, s.keep_private) for t in sorted(table) if t not in common_tags}
        for table, ds, s in zip(tables, datasets, summaries, strict=True)
    ]
    return {"common": common, "unique": unique}
