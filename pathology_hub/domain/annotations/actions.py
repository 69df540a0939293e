"""What a person does with a slide's annotations through the API, each one unit of work.

The rules are in :mod:`.queries`, :mod:`.writes` and :mod:`.import_export`, which take the
caller's session (tests, benchmarks); these run them in the current unit of work (see
:mod:`pathology_hub.domain.unit_of_work`), so a web handler holds no session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pathology_hub.domain import unit_of_work
from pathology_hub.domain.annotations.import_export import (ImportResult, export_collection_text, import_features,
                                                            parse_json_document)
from pathology_hub.domain.annotations.queries import list_collection_text
from pathology_hub.domain.annotations.writes import create_annotation, delete_annotation, update_annotation
from pathology_hub.models import Annotation, Slide, User

if TYPE_CHECKING:  # the DICOM stack (highdicom) is imported when a DICOM action runs, not at start-up
    from pydicom.dataset import Dataset

    from pathology_hub.domain.dicom.annotations_service import DicomImportResult


def list_text(user: User, slide: Slide, *, bbox: str | None = None, class_name: str | None = None,
              author: str | None = None) -> bytes:
    """The slide's live annotations as GeoJSON text (see :func:`.queries.list_collection_text`)."""
    return list_collection_text(unit_of_work.current(), user, slide, bbox=bbox, class_name=class_name, author=author)


def create(user: User, slide: Slide, data: dict, *, ip: str | None = None) -> Annotation:
    with unit_of_work.transaction() as session:
        return create_annotation(session, user, slide, data, ip=ip)


def update(user: User, slide: Slide, annotation_id: int, data: dict, expected_version: int | None, *,
           partial: bool, ip: str | None = None) -> Annotation:
    with unit_of_work.transaction() as session:
        return update_annotation(session, user, slide, annotation_id, data, expected_version, partial=partial, ip=ip)


def delete(user: User, slide: Slide, annotation_id: int, expected_version: int | None, *,
           ip: str | None = None) -> None:
    with unit_of_work.transaction() as session:
        delete_annotation(session, user, slide, annotation_id, expected_version, ip=ip)


def export_text(user: User, slide: Slide) -> str:
    """The slide's annotations and detections as a QuPath GeoJSON file."""
    return export_collection_text(unit_of_work.current(), user, slide)


def import_geojson(user: User, slide: Slide, raw: bytes, *, as_copies: bool = False,
                   ip: str | None = None) -> ImportResult:
    """Parse a QuPath GeoJSON file and import all of its features or none."""
    document = parse_json_document(raw)
    with unit_of_work.transaction() as session:
        return import_features(session, user, slide, document, as_copies=as_copies, ip=ip)


def export_dicom(user: User, slide: Slide, *, secret: str) -> bytes:
    """The slide's annotations as a DICOM Microscopy Bulk Simple Annotations file (Supplement 222)."""
    from pathology_hub.domain.dicom import annotations_service
    return annotations_service.export_instance_bytes(unit_of_work.current(), user, slide, secret=secret)


def import_dicom(user: User, slide: Slide, raw: bytes, *, secret: str, other_slide: bool = False,
                 as_copies: bool = False, ip: str | None = None) -> "DicomImportResult":
    """Import a Bulk Simple Annotations file: all annotations or none."""
    from pathology_hub.domain.dicom import annotations_service
    with unit_of_work.transaction() as session:
        return annotations_service.import_instance(session, user, slide, raw, secret=secret, other_slide=other_slide,
                                                   as_copies=as_copies, ip=ip)


def dicom_instances(user: User, slide: Slide, *, secret: str) -> list["Dataset"]:
    """The slide's annotation instances as pydicom Datasets for DICOMweb (zero or one; see
    :func:`pathology_hub.domain.dicom.annotations_service.annotation_instances`)."""
    from pathology_hub.domain.dicom import annotations_service
    return annotations_service.annotation_instances(unit_of_work.current(), user, slide, secret=secret)
