"""The anonymised tag dump (``{id}.json``): ``{"common": {...}, "unique": [...]}``.

Keys are ``gggg,eeee`` in lower-case hex; values are strings, multiple values joined by ``\\``.
A sequence becomes a list of item objects filtered by the same rules, so nothing identifying
survives inside sequences either.

Dropped (see docs/converter.md for the reasoning):
- pixel data and every binary value representation (OB, OD, OF, OL, OV, OW, UN);
- private (odd-group) tags, unless named in ``keep_private``;
- every person name (VR PN), wherever it occurs;
- the whole patient group 0010 except the few clinical facts plug-ins use (sex, age, size,
  weight, body-mass index, species, pregnancy status);
- the identifying tags listed in :data:`IDENTIFYING_TAGS` (the CIRCUS CS list plus the DICOM
  PS3.15 Basic Profile's direct identifiers outside group 0010).
"""

from __future__ import annotations

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW", "US or SS or OW"})

#: Group 0010 attributes kept: clinical facts, not identity.
PATIENT_GROUP_KEPT = frozenset(
    {
        0x00100040,  # Patient's Sex
        0x00101010,  # Patient's Age
        0x00101020,  # Patient's Size
        0x00101030,  # Patient's Weight
        0x00101022,  # Patient's Body Mass Index
        0x00102201,  # Patient Species Description
        0x00102203,  # Patient's Sex Neutered
        0x001021C0,  # Pregnancy Status
    }
)

#: Identifying tags outside group 0010 (the CIRCUS CS list and the Basic Profile's direct identifiers).
IDENTIFYING_TAGS = frozenset(
    {
        # CIRCUS CS's list
        0x00080080,  # Institution Name
        0x00080081,  # Institution Address
        0x00080082,  # Institution Code Sequence
        0x00081040,  # Institutional Department Name
        0x00081048,  # Physician(s) of Record
        0x00081049,  # Physician(s) of Record Identification Sequence
        0x00081050,  # Performing Physician's Name
        0x00081052,  # Performing Physician Identification Sequence
        0x00081060,  # Name of Physician(s) Reading Study
        0x00081062,  # Physician(s) Reading Study Identification Sequence
        0x00081070,  # Operators' Name
        0x00081072,  # Operator Identification Sequence
        0x00321031,  # Requesting Physician Identification Sequence
        0x00321032,  # Requesting Physician
        0x00321033,  # Requesting Service
        0x00320030,  # listed by CIRCUS CS as "Patient's birth date"
        # Basic Profile direct identifiers outside group 0010
        0x00080050,  # Accession Number
        0x00080090,  # Referring Physician's Name
        0x00080092,  # Referring Physician's Address
        0x00080094,  # Referring Physician's Telephone Numbers
        0x00080096,  # Referring Physician Identification Sequence
        0x00081010,  # Station Name
        0x00081080,  # Admitting Diagnoses Description
        0x00081084,  # Admitting Diagnoses Code Sequence
        0x00181000,  # Device Serial Number
        0x00200010,  # Study ID
        0x00321020,  # Scheduled Study Location
        0x00321021,  # Scheduled Study Location AE Title
        0x00321060,  # Requested Procedure Description
        0x00324000,  # Study Comments
        0x00380010,  # Admission ID
        0x00380011,  # Issuer of Admission ID
        0x00380300,  # Current Patient Location
        0x00380400,  # Patient's Institution Residence
        0x00384000,  # Visit Comments
        0x00400006,  # Scheduled Performing Physician's Name
        0x00400241,  # Performed Station AE Title
        0x00400242,  # Performed Station Name
        0x00400243,  # Performed Location
        0x00400253,  # Performed Procedure Step ID
        0x00400275,  # Request Attributes Sequence
        0x00401001,  # Requested Procedure ID
        0x00401010,  # Names of Intended Recipients of Results
        0x00402016,  # Placer Order Number / Imaging Service Request
        0x00402017,  # Filler Order Number / Imaging Service Request
        0x0040A123,  # Person Name
        0x00700084,  # Content Creator's Name
        0x00880140,  # Storage Media File-set UID
        0x04000561,  # Original Attributes Sequence (holds the values before de-identification)
    }
)


def is_identifying(tag: int, vr: str) -> bool:
    if vr == "PN" or tag in IDENTIFYING_TAGS:
        return True
    return (tag >> 16) == 0x0010 and tag not in PATIENT_GROUP_KEPT


def tag_key(tag: int) -> str:
    return f"{tag >> 16:04x},{tag & 0xFFFF:04x}"


def _text(value: object) -> str:
    original = getattr(value, "original_string", None)
    if isinstance(original, str):
        return original.strip()
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return "" if value is None else str(value)


def _value(element: DataElement, keep_private: frozenset[int]) -> object:
    if element.VR == "SQ":
        return [element_dict(item, keep_private) for item in element.value]
    value = element.value
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(_text(v) for v in value)
    return _text(value)


def _kept_vr(container: Dataset, tag: int, keep_private: frozenset[int]) -> str | None:
    """The element's VR if the dump keeps it, else None; decided before any value is decoded."""
    if tag == 0x7FE00010 or (tag >> 16) == 0xFFFE:
        return None
    if (tag >> 16) % 2 == 1 and tag not in keep_private:
        return None
    raw = container.get_item(tag, keep_deferred=True)
    # get_item(keep_deferred=True) never reads a deferred value (pixel data, overlays) from disk.
    vr = raw.VR if raw is not None and raw.VR else container[tag].VR  # implicit VR: dictionary VR
    vr = str(vr)
    if vr in BINARY_VRS or is_identifying(tag, vr):
        return None
    return vr


def element_dict(ds: Dataset, keep_private: frozenset[int] = frozenset()) -> dict[str, object]:
    """The dump of one dataset (or sequence item), filtered."""
    out: dict[str, object] = {}
    for key in ds.keys():  # noqa: SIM118 - iterating a Dataset itself decodes every element
        tag = int(key)
        if _kept_vr(ds, tag, keep_private) is not None:
            out[tag_key(tag)] = _value(ds[tag], keep_private)
    return out


def containers(ds: Dataset) -> list[Dataset]:
    """The file meta information (group 0002) and the dataset, in the order the dump reads them."""
    meta = getattr(ds, "file_meta", None)
    return [meta, ds] if meta is not None else [ds]


def charset_of(ds: Dataset) -> str:
    """The SpecificCharacterSet as it stands, part of every identity (see :func:`identity`)."""
    return str(ds.get_item(0x00080005, keep_deferred=True).value) if 0x00080005 in ds else ""


def identity(container: Dataset, tag: int, vr: str, charset: str) -> tuple[str, object, str]:
    """Something equal exactly when two files' decoded values are equal.

    Undecoded bytes (plus the character set they are decoded with) stand in for the value, so
    that telling common from unique tags costs a bytes comparison, not a decode. An element
    already decoded (the header fields the converter reads) stands in by its value's repr.
    """
    raw = container.get_item(tag, keep_deferred=True)
    value = raw.value if isinstance(raw.value, bytes) else repr(raw.value)
    return (vr, value, charset)


def identities(ds: Dataset, keep_private: frozenset[int]) -> dict[int, tuple[str, object, str]]:
    """Kept tags of one file → :func:`identity`; a tag in both meta and dataset: the dataset's."""
    return {tag: ident for tag, (ident, _, _) in kept_elements(ds, keep_private).items()}


def kept_elements(
    ds: Dataset, keep_private: frozenset[int]
) -> dict[int, tuple[tuple[str, object, str], Dataset, object]]:
    """Kept tags of one file → (:func:`identity`, the container, the element as it now stands).

    The rules of :func:`_kept_vr` and :func:`identity`, walking ``Dataset.items()`` (the stored
    elements, raw or decoded, as ``get_item(keep_deferred=True)`` returns them) instead of
    looking every tag up: pydicom's lookups by int call Python-level ``Tag()`` and
    ``BaseTag.__eq__`` and cost more than the rest of the work.
    """
    charset = charset_of(ds)
    found: dict[int, tuple[tuple[str, object, str], Dataset, object]] = {}
    for container in containers(ds):
        for key, stored in list(container.items()):
            tag = int(key)
            element = stored
            if tag == 0x7FE00010 or (tag >> 16) == 0xFFFE:
                continue
            if (tag >> 16) % 2 == 1 and tag not in keep_private:
                continue
            vr = element.VR
            if not vr:  # implicit VR: the dictionary VR, which decoding the element gives
                vr = container[key].VR
                element = container.get_item(key, keep_deferred=True)
            vr = str(vr)
            if vr in BINARY_VRS or is_identifying(tag, vr):
                continue
            value = element.value if isinstance(element.value, bytes) else repr(element.value)
            found[tag] = ((vr, value, charset), container, element)
    return found


def decode(ds: Dataset, tag: int, keep_private: frozenset[int]) -> object:
    """The dump's value of ``tag``: group 0002 from the file meta information, if the file has it."""
    meta = getattr(ds, "file_meta", None)
    container = meta if meta is not None and (tag >> 16) == 0x0002 else ds
    return _value(container[tag], keep_private)
