"""The database side of DICOM annotations: a slide's live annotations as one Bulk Simple
Annotations instance (download, DICOMweb) and importing such a file into a slide.

The mapping itself is :mod:`.annotations` (pure). The import goes through the QuPath import's
:func:`~pathology_hub.domain.annotations.import_export.import_features`, so both formats check
geometry, match existing annotations and audit the same way.

Which slide a file belongs to: 2D coordinates are pixels of the referenced image, named in the
file by its series (``ReferencedSeriesSequence``). A file whose series is this slide's (any
pyramid version: re-tiling does not move level-0 pixels) imports directly. A file of another
slide is refused with ``dicom_other_slide`` unless the caller confirms (``other_slide=True``):
copying annotations between serial sections is legitimate, but by accident it would put shapes
on tissue they were not drawn on. Coordinates are checked against this slide's size either way.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from pathology_hub.domain import policy
from pathology_hub.domain.annotations.features import _loads
from pathology_hub.domain.annotations.geometry import SlideFrame
from pathology_hub.domain.annotations.import_export import MAX_IMPORT_BYTES, ImportResult, import_features
from pathology_hub.domain.annotations.queries import _ensure_view
from pathology_hub.domain.annotations.qupath_format import qupath_properties
from pathology_hub.domain.dicom import uids
from pathology_hub.domain.dicom.annotations import (AnnotationRecord, DicomAnnotationError, SlideIdentity,
                                                    build_instance, read_dataset, read_instance, revision_of,
                                                    to_bytes)
from pathology_hub.domain.errors import ValidationFailed
from pathology_hub.models import Annotation, Slide, User
from pathology_hub.tiling.geometry import Geometry

#: The property that keeps an author this platform cannot vouch for (file not written by it, or changed).
CLAIMED_AUTHOR_PROPERTY = "dicomAuthor"


def full_resolution_level(slide: Slide) -> int:
    """The Deep Zoom level number of the slide's own pixels (the level annotations are drawn on)."""
    frame = SlideFrame.of(slide)
    if frame.width is None or frame.height is None:
        raise ValidationFailed("The slide is still being processed; its annotations cannot be exported yet.",
                               code="dicom_slide_not_ready")
    return Geometry(int(frame.width), int(frame.height)).max_level


def slide_identity(slide: Slide) -> SlideIdentity:
    """The UIDs (:mod:`.uids`) and pseudonymised identity that a DICOM file of this slide names."""
    frame = SlideFrame.of(slide)
    level = full_resolution_level(slide)
    case = slide.case
    version = slide.pyramid_version
    return SlideIdentity(
        study_uid=uids.study_uid(case.id, case.created_at),
        image_series_uid=uids.slide_series_uid(slide.uid, version),
        image_instance_uid=uids.level_instance_uid(slide.uid, version, level),
        frame_of_reference_uid=uids.frame_of_reference_uid(slide.uid, version),
        annotation_series_uid=uids.annotation_series_uid(slide.uid, version),
        patient_id=case.patient_pseudo_id or f"case-{case.id}", accession_number=case.case_number or str(case.id),
        study_datetime=case.created_at, slide_uid=slide.uid, slide_label=slide.label or "",
        width=float(frame.width or 0), height=float(frame.height or 0))


_COLUMNS = (Annotation.uid, Annotation.version, Annotation.geometry, Annotation.object_type, Annotation.locked,
            Annotation.class_name, Annotation.color, Annotation.name, Annotation.comment, Annotation.shape,
            Annotation.measurements, Annotation.extra, Annotation.author_id, Annotation.updated_at,
            User.username, User.full_name)


def _records(session: Session, slide: Slide) -> tuple[list[AnnotationRecord], str, dt.datetime]:
    rows = list(session.execute(
        select(*_COLUMNS).join(User, User.id == Annotation.author_id)
        .where(Annotation.slide_id == slide.id, Annotation.deleted_at.is_(None)).order_by(Annotation.id)))
    records = [AnnotationRecord(
        uid=r.uid, geometry=_loads(r.geometry), object_type=r.object_type, locked=bool(r.locked),
        class_name=r.class_name, color=r.color, name=r.name or "", comment=r.comment or "", shape=r.shape,
        measurements=_loads(r.measurements) or {}, extra=_loads(r.extra) or {}, author_id=r.author_id,
        author_username=r.username, author_name=r.full_name) for r in rows]
    revision = revision_of((r.uid, r.version) for r in rows)
    changed = max((r.updated_at for r in rows), default=slide.created_at)
    return records, revision, changed


def instance_uid(slide: Slide, revision: str) -> str:
    return uids.annotation_instance_uid(slide.uid, slide.pyramid_version, revision)


def current_instance_uid(session: Session, slide: Slide) -> str | None:
    """The SOP Instance UID of the slide's annotation instance now (None: no live annotations),
    without building it: from (uid, version) of the live rows only."""
    rows = list(session.execute(select(Annotation.uid, Annotation.version).where(
        Annotation.slide_id == slide.id, Annotation.deleted_at.is_(None))))
    return instance_uid(slide, revision_of((r.uid, r.version) for r in rows)) if rows else None


def _instance(session: Session, slide: Slide, secret: str) -> Dataset:
    records, revision, changed = _records(session, slide)
    try:
        return build_instance(slide_identity(slide), records, instance_uid=instance_uid(slide, revision),
                              secret=secret, content_time=changed)
    except DicomAnnotationError as exc:
        raise ValidationFailed(exc.message, code=exc.code, params=exc.params) from None


def export_instance_bytes(session: Session, user: User, slide: Slide, *, secret: str) -> bytes:
    """The slide's live annotations as a DICOM Part 10 file (the download); same state, same bytes."""
    _ensure_view(user, slide)
    return to_bytes(_instance(session, slide, secret))


def annotation_instances(session: Session, user: User, slide: Slide, *, secret: str) -> list[Dataset]:
    """The slide's annotation instances for DICOMweb (QIDO lists them, WADO retrieves them).

    Zero or one dataset: none when the slide has no live annotations or ``user`` may not see
    them (technicians and clinicians before the report is signed); the caller has already
    checked ``slide.view``. The SOP Instance UID is
    ``uids.annotation_instance_uid(slide.uid, pyramid_version, revision)`` where the revision is a
    digest of every live annotation's id and version, so it is stable until an annotation changes;
    the series is ``uids.annotation_series_uid`` and the study the case's ``uids.study_uid``."""
    if not policy.can(user, "annotation.view", slide):
        return []
    if session.scalar(select(Annotation.id).where(Annotation.slide_id == slide.id,
                                                  Annotation.deleted_at.is_(None)).limit(1)) is None:
        return []
    return [_instance(session, slide, secret)]


@dataclass
class DicomImportResult:
    result: ImportResult
    other_slide: bool        # the file named another slide and the caller confirmed
    authors_kept: int        # annotations created with the file's author (authentic platform file)
    authors_claimed: int     # annotations whose file author could not be vouched for (kept as a property)


def _same_slide(slide: Slide, series: frozenset[str]) -> bool:
    own = {uids.slide_series_uid(slide.uid, v) for v in range(0, max(slide.pyramid_version, 0) + 1)}
    return bool(own & series)


_SAFE = re.compile(r"[\x00-\x1f\x7f]")


def import_instance(session: Session, user: User, slide: Slide, raw: bytes, *, secret: str,
                    other_slide: bool = False, as_copies: bool = False, ip: str | None = None) -> DicomImportResult:
    """Import a Bulk Simple Annotations file: all annotations or none (see the module docstring)."""
    policy.ensure(user, "annotation.import", slide)
    try:
        read = read_instance(read_dataset(raw, limit=MAX_IMPORT_BYTES), secret=secret)
    except DicomAnnotationError as exc:
        raise ValidationFailed(exc.message, code=exc.code, params=exc.params) from None
    same = _same_slide(slide, read.referenced_series_uids)
    if not same and not other_slide:
        raise ValidationFailed("These annotations were drawn on another slide. Import them onto this slide "
                               "only if it shows the same tissue in the same position.", code="dicom_other_slide",
                               details={"confirm": "other_slide"})
    usernames: dict[int, str] = {}
    if read.authentic:  # only then may the file name someone else as author
        claimed = {r.author_id for r in read.records if r.author_id is not None}
        if claimed:
            usernames = dict(session.execute(select(User.id, User.username).where(User.id.in_(claimed))).all())
    features: list[dict[str, Any]] = []
    author_ids: list[int | None] = []
    kept = claimed_only = 0
    for rec in read.records:
        extra = dict(rec.extra)
        author = rec.author_id if (rec.author_id is not None and rec.author_username
                                   and usernames.get(rec.author_id) == rec.author_username) else None
        if author is None and rec.author_id == user.id and rec.author_username == user.username:
            author = user.id  # one's own annotations need no proof
        if author is not None:
            kept += 1
        elif rec.author_name or rec.author_username:
            extra.setdefault(CLAIMED_AUTHOR_PROPERTY, _SAFE.sub(" ", f"{rec.author_name} ({rec.author_username})")
                             .strip()[:200])
            claimed_only += 1
        props = qupath_properties(object_type=rec.object_type, locked=rec.locked, class_name=rec.class_name,
                                  color=rec.color, name=rec.name, comment=rec.comment, shape=rec.shape,
                                  measurements=rec.measurements, extra=extra)
        feature: dict[str, Any] = {"type": "Feature", "geometry": rec.geometry, "properties": props}
        if rec.uid:
            feature["id"] = rec.uid
        features.append(feature)
        author_ids.append(author)
    result = import_features(session, user, slide, features, as_copies=as_copies, ip=ip, author_ids=author_ids,
                             source="dicom")
    return DicomImportResult(result=result, other_slide=not same, authors_kept=kept, authors_claimed=claimed_only)
