"""QuPath GeoJSON import and export of a slide's annotations: all features checked before any is
written, idempotent re-import (matched by id, else by geometry and class), export with UUIDs.

The dialect mapping itself is :mod:`.qupath_format` (pure); this module is the database side.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from pathology_hub.domain import audit, policy
from pathology_hub.domain.annotations.features import _feature_text, _loads, list_text_of
from pathology_hub.domain.annotations.geometry import CheckedGeometry, SlideFrame, check_geometry
from pathology_hub.domain.annotations.palette import annotation_classes
from pathology_hub.domain.annotations.qupath_format import (FeatureError, FeatureRecord, display_color, features_of,
                                                            qupath_properties, read_feature)
from pathology_hub.domain.annotations.queries import _ensure_view, _live_rows
from pathology_hub.domain.annotations.writes import _conditional_update
from pathology_hub.domain.errors import ValidationFailed
from pathology_hub.domain.json_limits import loads_bounded
from pathology_hub.models import Annotation, Slide, User, utcnow


MAX_IMPORT_BYTES = 50 * 2**20     # one QuPath file


MAX_IMPORT_FEATURES = 200_000


MAX_REPORTED_ERRORS = 1000        # an import error lists at most this many offending features


def parse_json_document(raw: bytes, *, limit: int = MAX_IMPORT_BYTES) -> Any:
    if len(raw) > limit:
        raise ValidationFailed("The file is larger than %(mb)s MB.", code="import_too_large",
                               params={"mb": limit // 2**20})
    try:
        return loads_bounded(raw)
    except UnicodeDecodeError:
        raise ValidationFailed("The file is not UTF-8 text.", code="invalid_json") from None
    except json.JSONDecodeError as exc:
        raise ValidationFailed("The file is not valid JSON: %(error)s at line %(line)s, column %(column)s.",
                               code="invalid_json", params={"error": exc.msg, "line": exc.lineno, "column": exc.colno}) from None


@dataclass
class ImportResult:
    """``imported`` (= ``created``) keeps the old response field; ``updated`` and ``unchanged``
    are features matched to an existing annotation of this slide (see :func:`import_features`)."""
    imported: int
    detections: int
    renamed: list[dict[str, Any]]
    created: int = 0
    updated: int = 0
    unchanged: int = 0


#: Columns an import writes from the file; an existing row whose values all equal these is unchanged.
_IMPORTED_FIELDS = ("object_type", "locked", "geometry", "geom_type", "shape", "min_x", "min_y", "max_x", "max_y",
                    "area_px", "length_px", "class_name", "color", "name", "comment", "measurements", "extra")


def _imported_values(rec: FeatureRecord, geom: CheckedGeometry, palette: Mapping[str, str]) -> dict[str, Any]:
    return {
        "object_type": rec.object_type, "locked": rec.locked, "geometry": geom.text, "geom_type": geom.geom_type,
        "shape": rec.shape, "min_x": geom.bbox[0], "min_y": geom.bbox[1], "max_x": geom.bbox[2],
        "max_y": geom.bbox[3], "area_px": geom.area_px, "length_px": geom.length_px, "class_name": rec.class_name,
        "color": rec.color or palette.get(rec.class_name or "") or display_color(rec),
        "name": rec.name, "comment": rec.comment,
        "measurements": json.dumps(rec.measurements, ensure_ascii=False, allow_nan=False),
        "extra": json.dumps(rec.extra, ensure_ascii=False),
    }


def _same_values(row: Annotation, values: Mapping[str, Any]) -> bool:
    """Equal as data: JSON columns are compared parsed (key order and spacing do not count)."""
    for key in _IMPORTED_FIELDS:
        old, new = getattr(row, key), values[key]
        if key in ("measurements", "extra"):
            if _loads(old) != _loads(new):
                return False
        elif key in ("min_x", "min_y", "max_x", "max_y", "area_px", "length_px"):
            if not math.isclose(float(old or 0.0), float(new), rel_tol=1e-9, abs_tol=1e-9):
                return False
        elif old != new:
            return False
    return True


def _match_key(class_name: str | None, geometry_text: str) -> tuple[str | None, str]:
    """Identical geometry and class. Stored geometry is the text :func:`check_geometry` wrote,
    and a feature's is written the same way, so equal coordinates give equal text."""
    return class_name, geometry_text


def import_features(session: Session, user: User, slide: Slide, document: Any, *, as_copies: bool = False,
                    ip: str | None = None, author_ids: Sequence[int | None] | None = None,
                    source: str = "geojson") -> ImportResult:
    """All features or none: every feature is checked first, then applied in one transaction.

    Idempotent by default, so importing an exported file again does not duplicate it:

    * a feature whose id is the uid of a live annotation **of this slide** (uids of other
      slides are never looked up, so a file cannot reach another slide's annotations) updates
      that annotation when its content differs (version bumped, conditional on the loaded
      version like any edit) and leaves it alone when equal;
    * a feature without such an id whose geometry and class equal a live annotation's is
      matched to that annotation the same way (each annotation is matched at most once);
    * a matched annotation the user may not edit (another author's) is left unchanged when
      equal, and a changed feature for it is created as a new annotation with a new id;
    * everything else is created; an id already used on this slide (a deleted annotation, or a
      repeat within the file) is replaced by a new UUID and listed in ``renamed``.

    ``as_copies=True`` is the explicit "import as copies": every feature is created anew.

    ``author_ids`` (DICOM import of a file this platform wrote, see
    :mod:`pathology_hub.domain.dicom.annotations_service`) gives the author of each created
    feature by index; ``None`` or no list means the importing user. ``source`` names the file
    format in the audit record.
    """
    policy.ensure(user, "annotation.import", slide)
    try:
        features = features_of(document)
    except FeatureError as exc:
        raise ValidationFailed(exc.reason, code="invalid_geojson") from None
    if len(features) > MAX_IMPORT_FEATURES:
        raise ValidationFailed(f"The file holds {len(features)} features; at most {MAX_IMPORT_FEATURES} "
                               "can be imported at once.", code="import_too_large")
    frame = SlideFrame.of(slide)
    records: list[tuple[FeatureRecord, CheckedGeometry]] = []
    errors: list[dict[str, Any]] = []
    for index, raw in enumerate(features):
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        try:
            record = read_feature(raw)
            records.append((record, check_geometry(record.geometry, frame)))
        except FeatureError as exc:
            errors.append({"index": index, "id": raw_id if isinstance(raw_id, (str, int)) else None,
                           "reason": exc.reason})
    if errors:
        raise ValidationFailed(f"{len(errors)} of {len(features)} features are invalid; nothing was imported.",
                               code="invalid_features",
                               details={"invalid_count": len(errors), "features": errors[:MAX_REPORTED_ERRORS]})
    taken = set(session.scalars(select(Annotation.uid).where(Annotation.slide_id == slide.id)))
    live: dict[str, Annotation] = {}
    by_shape: dict[tuple[str | None, str], list[Annotation]] = {}
    if not as_copies:
        for row in session.scalars(select(Annotation).where(Annotation.slide_id == slide.id,
                                                            Annotation.deleted_at.is_(None))):
            live[row.uid] = row
            by_shape.setdefault(_match_key(row.class_name, row.geometry), []).append(row)
    matched: set[int] = set()
    now, rows, renamed = utcnow(), [], []
    updates: list[tuple[Annotation, dict[str, Any]]] = []
    unchanged = 0
    palette = {c["name"]: c["color"] for c in annotation_classes()}
    for index, (rec, geom) in enumerate(records):
        values = _imported_values(rec, geom, palette)
        target = live.get(rec.uid) if rec.uid is not None else None
        if target is None or target.id in matched:
            candidates = by_shape.get(_match_key(rec.class_name, geom.text), ())
            target = next((r for r in candidates if r.id not in matched and (rec.uid is None or r.uid != rec.uid)),
                          None) if candidates else None
        if target is not None:
            if _same_values(target, values):
                matched.add(target.id)
                unchanged += 1
                continue
            if policy.can(user, "annotation.edit", target):
                matched.add(target.id)
                updates.append((target, values))
                continue
        uid = rec.uid
        if uid is None or uid in taken:
            uid = str(uuid.uuid4())
            if rec.uid is not None:
                renamed.append({"index": index, "from": rec.uid, "to": uid})
        taken.add(uid)
        author_id = (author_ids[index] if author_ids is not None and index < len(author_ids) else None) or user.id
        rows.append({"slide_id": slide.id, "uid": uid, "author_id": author_id, **values,
                     "version": 1, "created_at": now, "updated_at": now})
        rows[-1]["list_text"] = list_text_of(rows[-1])
    for target, values in updates:
        # Same optimistic check as an edit: a concurrent change makes the whole import fail (409), not lost.
        _conditional_update(session, target, target.version, values)
    if rows:
        session.execute(insert(Annotation), rows)
    detections = sum(1 for rec, _ in records if rec.object_type != "annotation")
    audit.record(session, "annotation.import", actor=user, object_type="slide", object_id=slide.id,
                 case_id=slide.case_id, ip=ip,
                 details={"format": source, "count": len(rows), "created": len(rows), "updated": len(updates),
                          "unchanged": unchanged, "as_copies": as_copies, "detections": detections,
                          "ids_renewed": len(renamed), "updated_ids": [t.id for t, _ in updates][:1000]})
    session.commit()
    return ImportResult(imported=len(rows), detections=detections, renamed=renamed, created=len(rows),
                        updated=len(updates), unchanged=unchanged)


def export_collection_text(session: Session, user: User, slide: Slide) -> str:
    """The slide's live objects as a QuPath-readable FeatureCollection (ids are the UUIDs)."""
    _ensure_view(user, slide)
    features = []
    for r in _live_rows(session, slide):
        props = qupath_properties(object_type=r.object_type, locked=r.locked, class_name=r.class_name,
                                  color=r.color, name=r.name, comment=r.comment, shape=r.shape,
                                  measurements=_loads(r.measurements), extra=_loads(r.extra))
        features.append(_feature_text(r.uid, r.geometry, props))
    return '{"type":"FeatureCollection","features":[' + ",".join(features) + "]}"
