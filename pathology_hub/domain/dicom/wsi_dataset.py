"""VL Whole Slide Microscopy Image datasets (DICOM Supplement 145) describing a stored pyramid.

One instance per Deep Zoom level of the platform's pyramid, TILED_FULL, frames of the pyramid's own
tile size so a stored tile *is* a frame (see :mod:`.frames`). The datasets carry no pixel data here:
DICOMweb serves them as metadata and frames separately, and the export (:mod:`.export`) adds the
encapsulated frames. The patient module is filled from the case's pseudonymised identifier only —
never the patient's name, birth date or any vendor text field of the source file.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from functools import lru_cache

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import JPEGBaseline8Bit

from ...tiling.geometry import Geometry
from . import uids

VL_WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
TRANSFER_SYNTAX = JPEGBaseline8Bit  # every stored tile is a baseline JPEG
#: Levels smaller than this on both sides are left out: they are one tiny frame that no viewer asks for.
MIN_LEVEL_SIDE = 64
#: Pixel spacing used when the slide declares none (photos); marked in the dataset as unknown-ish.
FALLBACK_MPP = 1.0
MANUFACTURER = "Pathology Hub"


@dataclass(frozen=True)
class SlideInfo:
    """What the DICOM view of one slide needs, read once from the database rows (no ORM objects)."""

    slide_uid: str
    pyramid_version: int
    case_id: int
    case_created_at: dt.datetime
    case_number: str
    patient_pseudo_id: str
    container_id: str  # the slide's label on the platform ("S1"), not the glass label
    geometry: Geometry
    mpp_x: float | None = None
    mpp_y: float | None = None
    stain: str = ""
    scan_date: str | None = None
    series_number: int = 1
    #: associated images this user may receive ("label", "macro"); decided by the caller's policy
    associated: tuple[str, ...] = field(default_factory=tuple)
    slide_id: int = 0  # the platform's row id, for the view audit

    @property
    def study_uid(self) -> str:
        return uids.study_uid(self.case_id, self.case_created_at)

    @property
    def series_uid(self) -> str:
        return uids.slide_series_uid(self.slide_uid, self.pyramid_version)

    @property
    def frame_of_reference_uid(self) -> str:
        return uids.frame_of_reference_uid(self.slide_uid, self.pyramid_version)

    def levels(self) -> list[int]:
        """Deep Zoom levels exposed as instances, full resolution first."""
        g = self.geometry
        out = []
        for level in range(g.max_level, -1, -1):
            w, h = g.level_dimensions[level]
            if level != g.max_level and max(w, h) < MIN_LEVEL_SIDE:
                break
            out.append(level)
        return out

    def instance_uid(self, level: int) -> str:
        return uids.level_instance_uid(self.slide_uid, self.pyramid_version, level)

    def level_of_instance(self, instance_uid: str) -> int | None:
        for level in self.levels():
            if self.instance_uid(level) == instance_uid:
                return level
        return None

    def frame_size(self) -> int:
        return self.geometry.tile_size

    def frame_grid(self, level: int) -> tuple[int, int]:
        return self.geometry.level_tiles(level)

    def pixel_spacing_mm(self, level: int) -> tuple[float, float]:
        """(row spacing, column spacing) in mm: the slide's MPP times this level's true downsample."""
        g = self.geometry
        w, h = g.level_dimensions[level]
        mx = self.mpp_x or self.mpp_y or FALLBACK_MPP
        my = self.mpp_y or self.mpp_x or FALLBACK_MPP
        return (my * g.height / h / 1000.0, mx * g.width / w / 1000.0)


@lru_cache(maxsize=1)
def _srgb_icc() -> bytes:
    from PIL import ImageCms
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    ds = Dataset()
    ds.CodeValue, ds.CodingSchemeDesignator, ds.CodeMeaning = value, scheme, meaning
    return ds


def _dicom_date_time(info: SlideInfo) -> tuple[str, str]:
    when = info.case_created_at
    if info.scan_date:
        try:
            when = dt.datetime.fromisoformat(info.scan_date)
        except ValueError:
            pass
    return when.strftime("%Y%m%d"), when.strftime("%H%M%S")


def study_attributes(info: SlideInfo) -> Dataset:
    """Patient and study modules: the pseudonymised identifier only (no name, sex or birth date)."""
    ds = Dataset()
    ds.PatientName = info.patient_pseudo_id
    ds.PatientID = info.patient_pseudo_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "Patient module from pseudonymised case identifier"
    ds.StudyInstanceUID = info.study_uid
    date, time = info.case_created_at.strftime("%Y%m%d"), info.case_created_at.strftime("%H%M%S")
    ds.StudyDate, ds.StudyTime = date, time
    ds.StudyID = info.case_number[:16]
    ds.AccessionNumber = info.case_number[:16]
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Pathology consultation"
    return ds


def series_attributes(info: SlideInfo) -> Dataset:
    ds = Dataset()
    ds.Modality = "SM"
    ds.SeriesInstanceUID = info.series_uid
    ds.SeriesNumber = info.series_number
    ds.SeriesDescription = " ".join(p for p in (info.container_id, info.stain) if p)[:64]
    return ds


def _specimen(info: SlideInfo) -> Dataset:
    spec = Dataset()
    spec.SpecimenIdentifier = info.container_id[:64] or "1"
    spec.SpecimenUID = uids._uid("specimen", info.slide_uid)  # noqa: SLF001 - same derivation scheme
    spec.IssuerOfTheSpecimenIdentifierSequence = Sequence()
    spec.SpecimenPreparationSequence = Sequence()
    if info.stain:
        spec.SpecimenShortDescription = info.stain[:64]
    return spec


def _optical_path() -> Dataset:
    op = Dataset()
    op.OpticalPathIdentifier = uids.optical_path_id()
    op.OpticalPathDescription = "Bright field"
    op.IlluminationTypeCodeSequence = Sequence([_code("111744", "DCM", "Brightfield illumination")])
    op.IlluminationColorCodeSequence = Sequence([_code("414298005", "SCT", "Full Spectrum")])
    op.ICCProfile = _srgb_icc()
    op.ColorSpace = "SRGB"
    return op


def level_dataset(info: SlideInfo, level: int) -> Dataset:
    """The metadata of one pyramid level as a VL Whole Slide Microscopy Image instance (no pixels)."""
    g = info.geometry
    width, height = g.level_dimensions[level]
    cols, rows = info.frame_grid(level)
    size = info.frame_size()
    row_mm, col_mm = info.pixel_spacing_mm(level)
    full = level == g.max_level
    date, time = _dicom_date_time(info)

    ds = Dataset()
    ds.update(study_attributes(info))
    ds.update(series_attributes(info))
    ds.SOPClassUID = VL_WSI_SOP_CLASS
    ds.SOPInstanceUID = info.instance_uid(level)
    ds.InstanceNumber = g.max_level - level + 1
    ds.FrameOfReferenceUID = info.frame_of_reference_uid
    ds.PositionReferenceIndicator = "SLIDE_CORNER"
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = "Pyramid export"
    ds.DeviceSerialNumber = "1"
    ds.SoftwareVersions = "1"
    ds.ImageType = ["ORIGINAL" if full else "DERIVED", "PRIMARY", "VOLUME", "NONE" if full else "RESAMPLED"]
    ds.ContentDate, ds.ContentTime = date, time
    ds.AcquisitionDateTime = date + time
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PlanarConfiguration = 0
    ds.Rows = size
    ds.Columns = size
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = cols * rows
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.BurnedInAnnotation = "NO"
    ds.SpecimenLabelInImage = "NO"
    ds.VolumetricProperties = "VOLUME"
    ds.FocusMethod = "AUTO"
    ds.ExtendedDepthOfField = "NO"
    ds.DimensionOrganizationType = "TILED_FULL"
    dim = Dataset()
    dim.DimensionOrganizationUID = uids._uid("dimension-organization", info.slide_uid)  # noqa: SLF001
    ds.DimensionOrganizationSequence = Sequence([dim])
    ds.TotalPixelMatrixColumns = width
    ds.TotalPixelMatrixRows = height
    ds.TotalPixelMatrixFocalPlanes = 1
    origin = Dataset()
    origin.XOffsetInSlideCoordinateSystem = 0.0
    origin.YOffsetInSlideCoordinateSystem = 0.0
    ds.TotalPixelMatrixOriginSequence = Sequence([origin])
    ds.ImageOrientationSlide = [0, -1, 0, -1, 0, 0]
    ds.ImagedVolumeWidth = round(width * col_mm, 6)
    ds.ImagedVolumeHeight = round(height * row_mm, 6)
    ds.ImagedVolumeDepth = 0.001
    ds.NumberOfOpticalPaths = 1
    ds.OpticalPathSequence = Sequence([_optical_path()])
    ds.ContainerIdentifier = info.container_id[:16] or "1"
    ds.IssuerOfTheContainerIdentifierSequence = Sequence()
    ds.ContainerTypeCodeSequence = Sequence([_code("433466003", "SCT", "Microscope slide")])
    ds.AcquisitionContextSequence = Sequence()
    ds.SpecimenDescriptionSequence = Sequence([_specimen(info)])

    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [round(row_mm, 9), round(col_mm, 9)]
    measures.SliceThickness = 0.001
    shared.PixelMeasuresSequence = Sequence([measures])
    frame_type = Dataset()
    frame_type.FrameType = list(ds.ImageType)
    shared.WholeSlideMicroscopyImageFrameTypeSequence = Sequence([frame_type])
    path_ref = Dataset()
    path_ref.OpticalPathIdentifier = uids.optical_path_id()
    shared.OpticalPathIdentificationSequence = Sequence([path_ref])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    return ds


def downsample(info: SlideInfo, level: int) -> float:
    """How many full-resolution pixels one pixel of ``level`` spans (horizontally)."""
    g = info.geometry
    return g.width / g.level_dimensions[level][0]


def level_for_downsample(info: SlideInfo, factor: float) -> int:
    """The exposed level closest to a downsample factor (for tests and exports)."""
    return min(info.levels(), key=lambda lv: abs(math.log2(downsample(info, lv) / factor)))
