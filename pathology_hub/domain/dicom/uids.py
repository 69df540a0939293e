"""Stable DICOM UIDs, derived rather than stored.

A PACS or viewer that saw a slide yesterday must find the same study, series and instances today,
and a re-tiled slide (new pyramid version) must not pretend to be the old pixels. So every UID is a
``2.25`` UID (ISO/IEC 9834-8, no registered root needed): a name-based UUID of what identifies the
thing: the case's row id and creation time (case ids repeat across installations, their creation
instants do not), the slide's random ``uid`` and its ``pyramid_version``. Nothing is written to the
database, so every protocol (DICOMweb, the DICOM WSI export, DICOM annotations, FHIR ImagingStudy)
agrees without coordination.
"""

from __future__ import annotations

import datetime as dt

import uuid

_NAMESPACE = "pathology-hub"
_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:pathology-hub:dicom")


def _uid(*parts: object) -> str:
    # A name-based (SHA-1, version 5) UUID as a 2.25 UID. pydicom's generate_uid(prefix=None) ignores
    # entropy_srcs and returns a random uuid4 UID, which made every "stable" UID change per call.
    name = "|".join([_NAMESPACE, *(str(p) for p in parts)])
    return f"2.25.{uuid.uuid5(_UUID_NAMESPACE, name).int}"


def study_uid(case_id: int, case_created_at: dt.datetime) -> str:
    """One DICOM study per case."""
    return _uid("study", case_id, case_created_at.replace(tzinfo=None).isoformat())


def slide_series_uid(slide_uid: str, pyramid_version: int) -> str:
    """One series per slide and pyramid version (Supplement 145: all levels of one slide)."""
    return _uid("slide-series", slide_uid, pyramid_version)


def level_instance_uid(slide_uid: str, pyramid_version: int, level: int) -> str:
    """One instance per pyramid level; ``level`` is the platform's Deep Zoom level number."""
    return _uid("level-instance", slide_uid, pyramid_version, level)


def associated_instance_uid(slide_uid: str, pyramid_version: int, kind: str) -> str:
    """The label, macro (overview) or thumbnail image of a slide, as its own instance."""
    return _uid("associated-instance", slide_uid, pyramid_version, kind)


def frame_of_reference_uid(slide_uid: str, pyramid_version: int) -> str:
    """Shared by every level and by the annotations drawn on this pyramid."""
    return _uid("frame-of-reference", slide_uid, pyramid_version)


def optical_path_id() -> str:
    """Bright-field slides have one optical path; its identifier only needs to be consistent."""
    return "1"


def annotation_series_uid(slide_uid: str, pyramid_version: int) -> str:
    """Annotations of a slide live in a series of their own (Supplement 222, modality ANN)."""
    return _uid("annotation-series", slide_uid, pyramid_version)


def annotation_instance_uid(slide_uid: str, pyramid_version: int, revision: str) -> str:
    """One Bulk Simple Annotations instance per state of a slide's annotations; ``revision`` is a
    digest or counter that changes whenever the annotations do, so a changed set is a new instance."""
    return _uid("annotation-instance", slide_uid, pyramid_version, revision)
