"""Creating, editing and deleting annotations through the REST API, with optimistic locking:
the version check sits in the UPDATE's WHERE clause, so of two concurrent writers exactly one
wins and the other gets 409 with the current annotation (see the package docstring).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from pathology_hub.domain import audit, policy
from pathology_hub.domain.annotations.errors import VersionConflict, VersionRequired
from pathology_hub.domain.annotations.features import _row_values, list_text_of
from pathology_hub.domain.annotations.geometry import CheckedGeometry, SlideFrame, check_geometry
from pathology_hub.domain.annotations.palette import annotation_classes, palette_color
from pathology_hub.domain.annotations.qupath_format import MAX_COMMENT_LENGTH, MAX_NAME_LENGTH, SHAPES, FeatureError
from pathology_hub.domain.annotations.queries import get_annotation
from pathology_hub.domain.errors import Forbidden, NotFound, ValidationFailed
from pathology_hub.models import Annotation, Slide, User, utcnow


MAX_BODY_BYTES = 5 * 2**20        # one annotation through the REST API


@dataclass
class _Edit:
    geometry: CheckedGeometry | None = None
    class_name: str | None = None
    comment: str | None = None
    shape: str | None = None
    name: str | None = None
    given: frozenset[str] = frozenset()


def _read_edit(data: dict, frame: SlideFrame, *, require_geometry: bool) -> _Edit:
    """Fields from ``{"geometry", "properties": {...}}`` (a GeoJSON Feature) or the same keys at top level."""
    props = data.get("properties") if isinstance(data.get("properties"), dict) else {}
    fields = {**props, **{k: v for k, v in data.items() if k not in ("properties", "type", "id", "version")}}
    given = frozenset(k for k in ("geometry", "class", "comment", "shape", "name") if k in fields)
    edit = _Edit(given=given)
    if "geometry" in fields:
        try:
            edit.geometry = check_geometry(fields["geometry"], frame)
        except FeatureError as exc:
            raise ValidationFailed("Invalid geometry: %(reason)s.", code="invalid_geometry",
                                   params={"reason": exc.reason}) from None
    elif require_geometry:
        raise ValidationFailed("geometry is required.", code="invalid_geometry")
    if fields.get("class") is not None:
        if not isinstance(fields["class"], str):
            raise ValidationFailed("class must be a string.", code="invalid_field")
        edit.class_name = fields["class"]
    for key, limit in (("comment", MAX_COMMENT_LENGTH), ("name", MAX_NAME_LENGTH)):
        value = fields.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise ValidationFailed("%(field)s must be a string of at most %(max)s characters.", code="invalid_field",
                                   details={"field": key, "max": limit})
        setattr(edit, key, value)
    shape = fields.get("shape")
    if shape is not None and shape not in SHAPES:
        raise ValidationFailed("shape must be one of %(allowed)s (or null).", code="invalid_field",
                               params={"allowed": ", ".join(SHAPES)})
    edit.shape = shape
    return edit


def _check_class(name: str | None) -> str | None:
    if name is None:
        return None
    color = palette_color(name)
    if color is None:
        known = ", ".join(c["name"] for c in annotation_classes())
        raise ValidationFailed("Unknown annotation class %(name)s; use one of: %(known)s.", code="unknown_class",
                               params={"name": str(name), "known": known})
    return color


def create_annotation(session: Session, user: User, slide: Slide, data: dict, *, ip: str | None = None) -> Annotation:
    policy.ensure(user, "annotation.create", slide)
    frame = SlideFrame.of(slide)
    edit = _read_edit(data, frame, require_geometry=True)
    color = _check_class(edit.class_name)
    geom = edit.geometry
    now = utcnow()
    values = dict(
        slide_id=slide.id, uid=str(uuid.uuid4()), author_id=user.id, object_type="annotation", locked=False,
        geometry=geom.text, geom_type=geom.geom_type, shape=edit.shape,
        min_x=geom.bbox[0], min_y=geom.bbox[1], max_x=geom.bbox[2], max_y=geom.bbox[3],
        area_px=geom.area_px, length_px=geom.length_px, class_name=edit.class_name, color=color,
        name=edit.name or "", comment=edit.comment or "", measurements="{}", extra="{}", version=1,
        created_at=now, updated_at=now)
    annotation = Annotation(**values, list_text=list_text_of(values))
    session.add(annotation)
    session.flush()
    audit.record(session, "annotation.create", actor=user, object_type="annotation", object_id=annotation.id,
                 case_id=slide.case_id, ip=ip, details={"slide_id": slide.id, "class": edit.class_name,
                                                        "geometry": geom.geom_type})
    session.commit()
    return annotation


def resolve_version(if_match: str | None, body: dict | None) -> int | None:
    """The version an edit is based on, from ``If-Match: "3"`` or the body's ``"version": 3``."""
    header = None
    if if_match not in (None, ""):
        tag = if_match.strip()
        tag = tag[2:] if tag.startswith("W/") else tag
        tag = tag.strip('"')
        if not tag.isdigit():
            raise ValidationFailed('If-Match must be the annotation version, e.g. "3".', code="invalid_version")
        header = int(tag)
    field_value = (body or {}).get("version")
    if field_value is not None and (not isinstance(field_value, int) or isinstance(field_value, bool)):
        raise ValidationFailed("version must be an integer.", code="invalid_version")
    if header is not None and field_value is not None and header != field_value:
        raise ValidationFailed("If-Match and the version field disagree.", code="invalid_version")
    return header if header is not None else field_value


def _editable(session: Session, user: User, slide: Slide, annotation_id: int, action: str) -> Annotation:
    """Visible (else 404), the user's own (else 403), and not a locked import (403 ``annotation_locked``)."""
    annotation = get_annotation(session, user, slide, annotation_id)
    policy.ensure(user, action, annotation)
    if annotation.locked:
        raise Forbidden("This object was imported locked (a QuPath detection, cell or locked annotation) "
                        "and is read-only.", code="annotation_locked")
    return annotation


def _conditional_update(session: Session, annotation: Annotation, expected: int, values: dict) -> Annotation:
    """The version check is part of the UPDATE itself, so two concurrent writers cannot both win.

    The new ``list_text`` is built from the loaded row plus the changes, which is the new row
    exactly when the loaded row is the one at ``expected`` (every change bumps the version);
    otherwise (or for a delete) it is cleared, and a list serialises the row itself."""
    now = utcnow()
    list_text = None
    if annotation.version == expected and "deleted_at" not in values:
        list_text = list_text_of({**_row_values(annotation), **values, "version": expected + 1, "updated_at": now})
    result = session.execute(
        update(Annotation)
        .where(Annotation.id == annotation.id, Annotation.version == expected, Annotation.deleted_at.is_(None))
        .values(version=Annotation.version + 1, updated_at=now, list_text=list_text, **values)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        session.rollback()
        current = session.get(Annotation, annotation.id, populate_existing=True)
        if current is None or current.deleted_at is not None:
            raise NotFound("No such annotation on this slide.")
        raise VersionConflict(current)
    return annotation


def update_annotation(session: Session, user: User, slide: Slide, annotation_id: int, data: dict,
                      expected_version: int | None, *, partial: bool, ip: str | None = None) -> Annotation:
    """PUT (``partial=False``: geometry required, omitted properties reset) or PATCH (only the fields given)."""
    annotation = _editable(session, user, slide, annotation_id, "annotation.edit")
    if expected_version is None:
        raise VersionRequired('Send the version you edited: If-Match: "<version>" or "version" in the body.')
    edit = _read_edit(data, SlideFrame.of(slide), require_geometry=not partial)
    values: dict[str, Any] = {}
    if edit.geometry is not None:
        g = edit.geometry
        values.update(geometry=g.text, geom_type=g.geom_type, min_x=g.bbox[0], min_y=g.bbox[1], max_x=g.bbox[2],
                      max_y=g.bbox[3], area_px=g.area_px, length_px=g.length_px)
    if not partial or "class" in edit.given:
        if edit.class_name != annotation.class_name:
            values.update(class_name=edit.class_name, color=_check_class(edit.class_name))
        # An unchanged class is accepted even when it came from an import and is not in the palette.
    for key in ("comment", "name"):
        if not partial or key in edit.given:
            values[key] = getattr(edit, key) or ""
    if not partial or "shape" in edit.given:
        values["shape"] = edit.shape
    _conditional_update(session, annotation, expected_version, values)
    audit.record(session, "annotation.update", actor=user, object_type="annotation", object_id=annotation.id,
                 case_id=slide.case_id, ip=ip,
                 details={"slide_id": slide.id, "version": expected_version + 1, "fields": sorted(values)})
    session.commit()
    return session.get(Annotation, annotation.id, populate_existing=True)


def delete_annotation(session: Session, user: User, slide: Slide, annotation_id: int,
                      expected_version: int | None, *, ip: str | None = None) -> None:
    """Soft delete; with a version the delete is conditional like an edit."""
    annotation = _editable(session, user, slide, annotation_id, "annotation.delete")
    version = expected_version if expected_version is not None else annotation.version
    _conditional_update(session, annotation, version, {"deleted_at": utcnow()})
    audit.record(session, "annotation.delete", actor=user, object_type="annotation", object_id=annotation.id,
                 case_id=slide.case_id, ip=ip, details={"slide_id": slide.id, "version": version})
    session.commit()
