"""Which studies, series and instances a user may see through DICOMweb, and the seam for other series.

A case is a study, a READY slide (its current pyramid version) is a series, a pyramid level is an
instance (:mod:`.wsi_dataset`). The same policy as tiles decides (``slide.view``); label and macro
images are offered only under ``slide.view_label``. Other modules add series to a study through
:func:`register_series_provider` (annot20's DICOM annotations: one provider returning
:class:`DicomSeries` for a case), so QIDO-RS and WADO-RS list and serve them without knowing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable, Protocol

from pydicom.dataset import Dataset
from sqlalchemy import select

from ...models import Case, Slide, SlideStatus, User
from ...tiling.geometry import Geometry
from .. import policy, unit_of_work
from ..slides.descriptions import description_of
from . import associated, wsi_dataset
from .wsi_dataset import SlideInfo

#: Cases considered per study search (newest first); a consortium node holds thousands, not millions.
MAX_CASES = 2000


class GeometryLookup(Protocol):
    def __call__(self, slide_uid: str, pyramid_version: int) -> Geometry: ...


@dataclass
class DicomInstance:
    """One instance as QIDO-RS lists it and WADO-RS serves its metadata (and, for levels, frames)."""

    dataset: Callable[[], Dataset]  # full metadata, no pixel data
    sop_class_uid: str
    sop_instance_uid: str
    instance_number: int
    number_of_frames: int = 1
    rows: int = 0
    columns: int = 0
    #: a pyramid level of a slide: frames come from the stored tiles
    slide: SlideInfo | None = None
    level: int | None = None
    #: any other instance: its full Part 10 bytes (e.g. a Bulk Simple Annotations instance)
    part10: Callable[[], bytes] | None = None
    #: a single-frame image (label, macro): its one JPEG frame
    single_frame: Callable[[], bytes] | None = None
    image_type: tuple[str, ...] = ()


@dataclass
class DicomSeries:
    series_uid: str
    modality: str
    series_number: int
    description: str
    instances: list[DicomInstance] = field(default_factory=list)
    slide: SlideInfo | None = None


@dataclass
class DicomStudy:
    case_id: int
    info: Dataset  # patient + study attributes
    series: list[DicomSeries] = field(default_factory=list)

    @property
    def study_uid(self) -> str:
        return str(self.info.StudyInstanceUID)


#: ``provider(user, case) -> series`` added to each visible study (annotations, ...).
SeriesProvider = Callable[[User, Case], Iterable[DicomSeries]]
_PROVIDERS: list[SeriesProvider] = []


def register_series_provider(provider: SeriesProvider) -> None:
    """Add series to every study a user sees (registering the same provider twice is harmless)."""
    if provider not in _PROVIDERS:
        _PROVIDERS.append(provider)


def slide_info(slide: Slide, geometry: Geometry, *, series_number: int = 1,
               associated: tuple[str, ...] = ()) -> SlideInfo:
    desc = description_of(slide)
    case = slide.case
    return SlideInfo(slide_uid=slide.uid, pyramid_version=slide.pyramid_version, case_id=case.id,
                     case_created_at=case.created_at, case_number=case.case_number,
                     patient_pseudo_id=case.patient_pseudo_id, container_id=slide.label or "",
                     geometry=geometry, mpp_x=desc.get("mpp_x"), mpp_y=desc.get("mpp_y"),
                     stain=slide.stain or "", scan_date=desc.get("scan_date"), series_number=series_number,
                     associated=associated, slide_id=slide.id)


def allowed_associated(user: User, slide: Slide) -> tuple[str, ...]:
    """Label and macro (overview) images carry the glass label, so both need ``slide.view_label``."""
    names = description_of(slide).get("associated_images", [])
    if not policy.can(user, "slide.view_label", slide):
        return ()
    return tuple(n for n in ("label", "macro") if n in names)


def _level_instances(info: SlideInfo) -> list[DicomInstance]:
    out = []
    for level in info.levels():
        cols, rows = info.frame_grid(level)
        out.append(DicomInstance(
            dataset=(lambda lv=level: wsi_dataset.level_dataset(info, lv)),
            sop_class_uid=wsi_dataset.VL_WSI_SOP_CLASS, sop_instance_uid=info.instance_uid(level),
            instance_number=info.geometry.max_level - level + 1, number_of_frames=cols * rows,
            rows=info.frame_size(), columns=info.frame_size(), slide=info, level=level))
    return out


def _associated_instances(slide: Slide, info: SlideInfo) -> list[DicomInstance]:
    """Label/macro instances (only names already allowed by ``slide.view_label``), read lazily."""
    from ... import runtime
    from ..slides.keys import associated_key
    out = []
    for name in info.associated:
        key = associated_key(slide, name)

        @lru_cache(maxsize=1)
        def frame(key: str = key) -> tuple[bytes, int, int]:
            return associated.jpeg_frame(runtime.store().get_bytes(key))

        def dataset(name: str = name, frame=frame) -> Dataset:
            _, w, h = frame()
            return associated.associated_dataset(info, name, w, h)
        out.append(DicomInstance(
            dataset=dataset, sop_class_uid=wsi_dataset.VL_WSI_SOP_CLASS,
            sop_instance_uid=associated.instance_uid(info, name),
            instance_number=associated.INSTANCE_NUMBER[name], number_of_frames=1,
            single_frame=(lambda frame=frame: frame()[0]),
            image_type=("ORIGINAL", "PRIMARY", associated.IMAGE_TYPE[name], "NONE")))
    return out


def slide_series(user: User, slide: Slide, geometry: Geometry, series_number: int = 1) -> DicomSeries:
    info = slide_info(slide, geometry, series_number=series_number, associated=allowed_associated(user, slide))
    series = DicomSeries(series_uid=info.series_uid, modality="SM", series_number=series_number,
                         description=str(wsi_dataset.series_attributes(info).SeriesDescription), slide=info)
    series.instances = _level_instances(info) + _associated_instances(slide, info)
    return series


def _readable_slides(case: Case) -> list[Slide]:
    return [s for s in case.slides if s.status is SlideStatus.READY]


def _study(user: User, case: Case, geometry_of: GeometryLookup, *, with_series: bool = True) -> DicomStudy | None:
    slides = [s for s in _readable_slides(case) if policy.can(user, "slide.view", s)]
    if not slides:
        return None
    study = DicomStudy(case_id=case.id, info=Dataset())
    series: list[DicomSeries] = []
    for number, slide in enumerate(slides, start=1):
        try:
            geometry = geometry_of(slide.uid, slide.pyramid_version)
        except LookupError:
            continue  # pyramid not (or no longer) stored: not offered
        series.append(slide_series(user, slide, geometry, series_number=number))
    if not series:
        return None
    study.info = wsi_dataset.study_attributes(series[0].slide)  # type: ignore[arg-type]
    for provider in _PROVIDERS:
        series.extend(provider(user, case))
    study.series = series
    return study


def visible_studies(user: User, geometry_of: GeometryLookup) -> list[DicomStudy]:
    """Every study (case) with a READY slide the user may view, newest case first."""
    session = unit_of_work.current()
    stmt = (select(Case).where(Case.id.in_(select(Slide.case_id).where(
        Slide.status == SlideStatus.READY, Slide.deleted_at.is_(None)))).order_by(Case.created_at.desc())
        .limit(MAX_CASES))
    studies = []
    for case in session.scalars(stmt):
        if not policy.can(user, "case.view", case):
            continue
        study = _study(user, case, geometry_of)
        if study is not None:
            studies.append(study)
    return studies


def find_study(user: User, study_uid: str, geometry_of: GeometryLookup) -> DicomStudy | None:
    for study in visible_studies(user, geometry_of):
        if study.study_uid == study_uid:
            return study
    return None


def find_series(user: User, study_uid: str, series_uid: str, geometry_of: GeometryLookup
                ) -> tuple[DicomStudy, DicomSeries] | None:
    study = find_study(user, study_uid, geometry_of)
    if study is None:
        return None
    for series in study.series:
        if series.series_uid == series_uid:
            return study, series
    return None


def slide_of(info: SlideInfo) -> Slide | None:
    return unit_of_work.get(Slide, info.slide_id)


def json_value(ds: Dataset) -> dict[str, Any]:
    """DICOM JSON (PS3.18 F.2) of a dataset, bulk data inline as base64 (small: ICC profile)."""
    return ds.to_json_dict()


def record_export(user: User, slide: Slide, *, files: int, ip: str | None = None) -> None:
    """The audit entry of a DICOM WSI download (ids and counts only, never the patient's name)."""
    from .. import audit
    with unit_of_work.transaction() as session:
        audit.record(session, "slide.export_dicom", actor=user, object_type="slide", object_id=slide.id,
                     case_id=slide.case_id, ip=ip,
                     details={"files": files, "pyramid_version": slide.pyramid_version,
                              "label_included": "label" in allowed_associated(user, slide)})
