"""Builders of synthetic DICOM series for tests and benchmarks (real Part 10 files via pydicom).

``SeriesSpec`` describes a regular series; ``make_slices`` turns it into datasets the test may
still tamper with (drop one, move one, change a size...); ``save`` writes them as files.
The pixel values are reproducible (seeded) and known, so tests can compare exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """A rotation matrix; its first two columns make an (oblique) ImageOrientationPatient."""
    a, b, c = (math.radians(v) for v in (yaw_deg, pitch_deg, roll_deg))
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rx = np.array([[1, 0, 0], [0, math.cos(c), -math.sin(c)], [0, math.sin(c), math.cos(c)]])
    return rz @ ry @ rx


def orientation_of(matrix: np.ndarray) -> tuple[float, ...]:
    return tuple(round(float(v), 6) for v in (*matrix[:, 0], *matrix[:, 1]))


AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@dataclass
class SeriesSpec:
    rows: int = 20
    columns: int = 24
    slices: int = 8
    pixel_spacing: tuple[float, float] = (0.8, 0.6)  # (row spacing, column spacing)
    slice_step: float = 2.5
    orientation: tuple[float, ...] = AXIAL
    origin: tuple[float, float, float] = (-40.0, -30.0, 100.0)
    bits_allocated: int = 16
    bits_stored: int = 16
    signed: bool = True
    slope: float | None = None
    intercept: float | None = None
    value_range: tuple[int, int] = (-1024, 3071)
    modality: str = "CT"
    series_uid: str = field(default_factory=generate_uid)
    study_uid: str = field(default_factory=generate_uid)
    description: str = "synthetic"
    seed: int = 7
    #: Instance number of the slice at step i (default: i + 1, ascending along the normal).
    instance_numbers: Sequence[int] | None = None

    def with_(self, **changes: object) -> SeriesSpec:
        return replace(self, **changes)  # type: ignore[arg-type]

    def normal(self) -> np.ndarray:
        return np.cross(np.array(self.orientation[:3]), np.array(self.orientation[3:]))

    def position(self, index: int) -> tuple[float, ...]:
        p = np.array(self.origin) + index * self.slice_step * self.normal()
        return tuple(round(float(v), 4) for v in p)

    def stored_values(self) -> np.ndarray:
        """(slices, rows, columns) stored values, reproducible from the seed."""
        rng = np.random.default_rng(self.seed)
        dtype = {8: np.int8 if self.signed else np.uint8, 16: np.int16 if self.signed else np.uint16}[
            self.bits_allocated
        ]
        low, high = self.value_range
        return rng.integers(low, high + 1, size=(self.slices, self.rows, self.columns)).astype(dtype)


def make_slices(spec: SeriesSpec) -> list[Dataset]:
    """One dataset per slice, slice i at origin + i * step along the normal."""
    values = spec.stored_values()
    numbers = list(spec.instance_numbers or range(1, spec.slices + 1))
    datasets = []
    for i in range(spec.slices):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.Modality = spec.modality
        ds.StudyInstanceUID = spec.study_uid
        ds.SeriesInstanceUID = spec.series_uid
        ds.SeriesDescription = spec.description
        ds.StudyDate = "20260102"
        ds.SeriesNumber = 3
        ds.InstanceNumber = numbers[i]
        ds.ImagePositionPatient = list(spec.position(i))
        ds.ImageOrientationPatient = list(spec.orientation)
        ds.PixelSpacing = list(spec.pixel_spacing)
        ds.SliceThickness = abs(spec.slice_step)
        ds.SliceLocation = float(np.dot(spec.position(i), spec.normal()))
        ds.Rows, ds.Columns = spec.rows, spec.columns
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = spec.bits_allocated
        ds.BitsStored = spec.bits_stored
        ds.HighBit = spec.bits_stored - 1
        ds.PixelRepresentation = 1 if spec.signed else 0
        if spec.slope is not None:
            ds.RescaleSlope = spec.slope
        if spec.intercept is not None:
            ds.RescaleIntercept = spec.intercept
        ds.PixelData = values[i].tobytes()
        datasets.append(ds)
    return datasets


def save(datasets: Sequence[Dataset], folder: Path, names: Sequence[str] | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, ds in enumerate(datasets):
        path = folder / (names[i] if names else f"IM{i:04d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_series(spec: SeriesSpec, folder: Path, names: Sequence[str] | None = None) -> list[Path]:
    return save(make_slices(spec), folder, names)


#: Identifying attributes filled by the PHI test: keyword → a value that must never appear.
IDENTIFYING_VALUES = {
    "PatientName": "Doe^Jane^Q",
    "PatientID": "MRN-0042-7731",
    "PatientBirthDate": "19510317",
    "PatientBirthTime": "101500",
    "OtherPatientIDs": "ALT-99182",
    "OtherPatientNames": "Roe^Janet",
    "PatientAddress": "12 Elm Street Springfield",
    "PatientTelephoneNumbers": "555-0199-3321",
    "PatientMotherBirthName": "Smith^Mary",
    "PatientComments": "allergic to penicillin per Dr House",
    "MedicalRecordLocator": "BOX-77-SHELF-3",
    "IssuerOfPatientID": "SPRINGFIELD-GENERAL",
    "EthnicGroup": "ETHNIC-XYZ",
    "InstitutionName": "Springfield General Hospital",
    "InstitutionAddress": "1 Hospital Way Springfield",
    "InstitutionalDepartmentName": "Radiology Dept West",
    "PhysiciansOfRecord": "Kildare^James",
    "PerformingPhysicianName": "Quinn^Michaela",
    "NameOfPhysiciansReadingStudy": "Grey^Meredith",
    "OperatorsName": "Tech^Terry",
    "ReferringPhysicianName": "Welby^Marcus",
    "ReferringPhysicianAddress": "3 Clinic Road",
    "RequestingPhysician": "Carter^John",
    "RequestingService": "ONCOLOGY-WARD-9",
    "AccessionNumber": "ACC-5553120",
    "StudyID": "STUDY-8812",
    "StationName": "CT-SPRING-01",
    "DeviceSerialNumber": "SN-99812-XQ",
    "AdmissionID": "ADM-44120",
}


def fill_identifying(ds: Dataset) -> None:
    """Put every identifying attribute in, at the top level and hidden inside sequences."""
    for keyword, value in IDENTIFYING_VALUES.items():
        setattr(ds, keyword, value)
    code = Dataset()
    code.CodeValue = "INST-CODE-314"
    code.CodingSchemeDesignator = "LOCAL"
    code.CodeMeaning = "Springfield General Hospital code"
    ds.InstitutionCodeSequence = DicomSequence([code])
    person = Dataset()
    person.PersonName = "Hidden^Person^InSequence"
    person.PersonIdentificationCodeSequence = DicomSequence([code])
    ds.PhysiciansOfRecordIdentificationSequence = DicomSequence([person])
    ds.OperatorIdentificationSequence = DicomSequence([person])
    ds.RequestingPhysicianIdentificationSequence = DicomSequence([person])
    # An innocent-looking sequence that still carries names and IDs inside.
    item = Dataset()
    item.RequestedProcedureID = "REQPROC-7781"
    item.ScheduledProcedureStepID = "SPS-1"
    item.ReferringPhysicianName = "Nested^Referrer"
    item.PatientID = "NESTED-MRN-31337"
    ds.RequestAttributesSequence = DicomSequence([item])
    ref = Dataset()
    ref.ReferencedSOPClassUID = CT_IMAGE_STORAGE
    ref.ReferencedSOPInstanceUID = generate_uid()
    ref.PatientName = "Deep^Nested^Name"
    ds.ReferencedImageSequence = DicomSequence([ref])
    ds.add_new(0x00091010, "LO", "PRIVATE-SECRET-123")


def bundled(name: str) -> Path:
    """A test file shipped inside the pydicom wheel (never downloaded: no network here)."""
    import pydicom

    path = Path(pydicom.__file__).parent / "data" / "test_files" / name
    assert path.is_file(), f"{name} is not bundled with pydicom {pydicom.__version__}"
    return path
