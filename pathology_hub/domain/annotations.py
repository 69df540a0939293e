"""Annotations and measurements on slides: validation, storage, versioned edits, QuPath exchange.

Coordinates are full-resolution slide pixels, origin top-left, as GeoJSON geometry
(Point, MultiPoint, LineString, Polygon, MultiPolygon; ellipses and rectangles are
polygons with ``shape`` kept for the editor).  Decisions worth knowing:

* Edits are optimistic: every change names the version it was based on and the
  check sits in the UPDATE's WHERE clause, so of two concurrent writers exactly
  one wins and the other gets 409 with the current annotation, never a silent overwrite.
* Deletion is soft (``deleted_at``): the record stays for the audit trail.
* Classes must come from the palette when created or changed through the API;
  QuPath imports keep the file's own class names and colours (imported files
  bring their own classification, and mapping them to "other" would lose it).
* Import ids (QuPath UUIDs) are kept when they do not collide on the target slide
  (deleted annotations included), otherwise a new UUID is given and reported.
* Comments are stored exactly as typed; escaping is the browser's job.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import uuid
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable, Mapping

import numpy as np
import orjson
import shapely
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from ..models import Annotation, Slide, User, as_utc, utcnow
from . import annotation_cache, audit, policy
from .errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed
from .json_limits import loads_bounded
from .geojson_qupath import (MAX_CLASS_LENGTH, MAX_COMMENT_LENGTH, MAX_NAME_LENGTH, SHAPES, FeatureError,
                             FeatureRecord, display_color, features_of, qupath_properties,
                             read_feature)

GEOMETRY_TYPES = ("Point", "MultiPoint", "LineString", "Polygon", "MultiPolygon")
MAX_VERTICES = 100_000            # per annotation
MAX_BODY_BYTES = 5 * 2**20        # one annotation through the REST API
MAX_IMPORT_BYTES = 50 * 2**20     # one QuPath file
MAX_IMPORT_FEATURES = 200_000
MAX_REPORTED_ERRORS = 1000        # an import error lists at most this many offending features

DEFAULT_CLASSES: tuple[dict[str, str], ...] = (
    {"name": "tumour", "color": "#d62728"},
    {"name": "stroma", "color": "#ff7f0e"},
    {"name": "necrosis", "color": "#7f7f7f"},
    {"name": "inflammation", "color": "#1f77b4"},
    {"name": "mitosis", "color": "#9467bd"},
    {"name": "other", "color": "#2ca02c"},
)


class VersionConflict(Conflict):
    """The annotation changed since the client read it; ``current`` is what is stored now."""

    code = "version_conflict"

    def __init__(self, current: Annotation) -> None:
        super().__init__(f"The annotation was changed by someone else (now version {current.version}); "
                         "reload it and apply your change again.")
        self.current = current


class VersionRequired(DomainError):
    status = 428
    code = "version_required"


class PaletteMisconfigured(DomainError):
    status = 500
    code = "annotation_classes_misconfigured"


# ---------------------------------------------------------------- class palette
_palette_cache: dict[tuple[str, float], list[dict[str, str]]] = {}


def annotation_classes() -> list[dict[str, str]]:
    """The palette of the institution network: the default, or the JSON file named by ANNOTATION_CLASSES_FILE."""
    path = os.environ.get("ANNOTATION_CLASSES_FILE", "").strip()
    if not path:
        return [dict(c) for c in DEFAULT_CLASSES]
    try:
        key = (path, Path(path).stat().st_mtime)
        if key not in _palette_cache:
            _palette_cache.clear()
            _palette_cache[key] = _read_palette(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise PaletteMisconfigured(f"ANNOTATION_CLASSES_FILE cannot be used: {exc}") from None
    return [dict(c) for c in _palette_cache[key]]


def _read_palette(data: Any) -> list[dict[str, str]]:
    """Accepts ``[{name, color}]`` or ``{"classes": [{name, color}]}`` with colours as ``#rrggbb``."""
    items = data.get("classes") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise ValueError("expected a non-empty list of {name, color}")
    out, seen = [], set()
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        color = str(item.get("color", "")).lower() if isinstance(item, dict) else ""
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_CLASS_LENGTH or name in seen:
            raise ValueError(f"bad or duplicate class name {name!r}")
        if len(color) != 7 or color[0] != "#" or any(c not in "0123456789abcdef" for c in color[1:]):
            raise ValueError(f"class {name!r}: colour must be #rrggbb")
        seen.add(name)
        out.append({"name": name, "color": color})
    return out


def palette_color(class_name: str | None) -> str | None:
    return next((c["color"] for c in annotation_classes() if c["name"] == class_name), None)


# ---------------------------------------------------------------- slide frame and geometry
@dataclass(frozen=True)
class SlideFrame:
    """What validation and measurements need from the slide's stored description."""

    width: float | None
    height: float | None
    mpp_x: float | None
    mpp_y: float | None

    @classmethod
    def of(cls, slide: Slide) -> "SlideFrame":
        try:
            desc = json.loads(slide.description or "{}")
        except ValueError:
            desc = {}

        def num(key: str) -> float | None:
            value = desc.get(key) if isinstance(desc, dict) else None
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
            return float(value) if ok else None
        mpp_x = num("mpp_x")
        return cls(num("width"), num("height"), mpp_x, num("mpp_y") or mpp_x)

    def measurements(self, geom_type: str, area_px: float, length_px: float) -> dict[str, float | None]:
        """µm figures from pixel ones; square pixels assumed for lengths (``mpp_x``), null when mpp is unknown."""
        area = geom_type in ("Polygon", "MultiPolygon")
        line = geom_type == "LineString"
        known = self.mpp_x is not None
        return {
            "length_um": round(length_px * self.mpp_x, 3) if known and line else None,
            "area_um2": round(area_px * self.mpp_x * (self.mpp_y or self.mpp_x), 3) if known and area else None,
            "perimeter_um": round(length_px * self.mpp_x, 3) if known and area else None,
        }


@dataclass(frozen=True)
class CheckedGeometry:
    text: str
    geom_type: str
    bbox: tuple[float, float, float, float]
    area_px: float
    length_px: float


_NUMBER_TYPES = {int, float}  # JSON numbers; bool is its own type, so true/false are refused


def _positions(seq: Any, counter: list[int], minimum: int, what: str) -> np.ndarray:
    """All positions of one ring or line at once (numpy), so 100-vertex polygons validate in microseconds."""
    if not isinstance(seq, list) or len(seq) < minimum:
        raise FeatureError(f"{what} needs at least {minimum} positions")
    try:
        if not set(map(type, chain.from_iterable(seq))) <= _NUMBER_TYPES:
            raise TypeError
        arr = np.array(seq, dtype=float)
    except (TypeError, ValueError):
        raise FeatureError("every position must be [x, y] with finite numbers") from None
    if arr.ndim != 2 or arr.shape[1] not in (2, 3) or not np.isfinite(arr).all():
        raise FeatureError("every position must be [x, y] with finite numbers")
    counter[0] += len(seq)
    if counter[0] > MAX_VERTICES:
        raise FeatureError(f"more than {MAX_VERTICES} vertices")
    return arr


def _polygon(rings: Any, counter: list[int]) -> shapely.Polygon:
    if not isinstance(rings, list) or not rings:
        raise FeatureError("a polygon needs at least one ring")
    arrays = []
    for ring in rings:
        arrays.append(_positions(ring, counter, 4, "a polygon ring"))
        if ring[0] != ring[-1]:
            raise FeatureError("polygon rings must be closed (last position equal to the first)")
    return shapely.polygons(arrays[0]) if len(arrays) == 1 else shapely.Polygon(arrays[0], arrays[1:])


def _to_shape(kind: str, coords: Any, counter: list[int]) -> shapely.Geometry:
    """Build the shapely geometry straight from numpy arrays (several times faster than parsing GeoJSON)."""
    if kind == "Point":
        return shapely.points(_positions([coords], counter, 1, "a Point")[0])
    if kind == "MultiPoint":
        return shapely.multipoints(_positions(coords, counter, 1, "a MultiPoint"))
    if kind == "LineString":
        return shapely.linestrings(_positions(coords, counter, 2, "a LineString"))
    if kind == "Polygon":
        return _polygon(coords, counter)
    if not isinstance(coords, list) or not coords:
        raise FeatureError("a MultiPolygon needs at least one polygon")
    return shapely.multipolygons([_polygon(polygon, counter) for polygon in coords])


def check_geometry(geom: Any, frame: SlideFrame) -> CheckedGeometry:
    """Structure, validity (shapely), and bounds against the slide; raises :class:`FeatureError`."""
    if not isinstance(geom, dict) or geom.get("type") not in GEOMETRY_TYPES:
        raise FeatureError(f"geometry must be one of {', '.join(GEOMETRY_TYPES)}")
    kind, coords = geom["type"], geom.get("coordinates")
    shp = _to_shape(kind, coords, [0])
    if not shp.is_valid:
        reason = shapely.is_valid_reason(shp)
        if reason.startswith("Self-intersection"):
            raise FeatureError(f"self-intersecting {kind} ({reason})")
        raise FeatureError(f"invalid {kind} ({reason})")
    min_x, min_y, max_x, max_y = shp.bounds
    if frame.width is None or frame.height is None:
        raise FeatureError("the slide's dimensions are not known yet (is it still being processed?)")
    if min_x < 0 or min_y < 0 or max_x > frame.width or max_y > frame.height:
        raise FeatureError(f"coordinates outside the slide (0..{frame.width:g} × 0..{frame.height:g}): "
                           f"bounds {min_x:g},{min_y:g},{max_x:g},{max_y:g}")
    # Stored exactly as sent (Python's float repr round-trips), so an export re-imports coordinate for coordinate.
    text = json.dumps({"type": kind, "coordinates": coords}, separators=(",", ":"))
    return CheckedGeometry(text, kind, (min_x, min_y, max_x, max_y), float(shp.area), float(shp.length))


# ---------------------------------------------------------------- serialisation
def _iso(value: dt.datetime | None) -> str | None:
    return as_utc(value).isoformat() if value is not None else None


def _loads(text: str | None) -> Any:
    try:
        return json.loads(text or "{}")
    except ValueError:
        return {}


def _feature_text(feature_id: Any, geometry_text: str, properties: dict) -> str:
    """Geometry is spliced in as stored (validated compact JSON): 10,000 polygons are never re-parsed."""
    return ('{"type":"Feature","id":%s,"geometry":%s,"properties":%s}'
            % (json.dumps(feature_id), geometry_text, json.dumps(properties, ensure_ascii=False)))


def _api_properties(a: Any, author_name: str | None, frame: SlideFrame) -> dict[str, Any]:
    props = _cacheable_properties(a, frame)
    props["author_name"] = author_name  # last: the list cache splices it per request
    return props


def _cacheable_properties(a: Any, frame: SlideFrame) -> dict[str, Any]:
    """Everything but the author's display name (which can change without the annotation)."""
    props = {
        "uuid": a.uid, "object_type": a.object_type, "locked": a.locked,
        "class": a.class_name, "color": a.color, "name": a.name, "comment": a.comment, "shape": a.shape,
        "author": a.author_id,
        "created_at": _iso(a.created_at), "updated_at": _iso(a.updated_at), "version": a.version,
        "measurements": _loads(a.measurements),
    }
    props.update(frame.measurements(a.geom_type, a.area_px, a.length_px))
    return props


#: Row fields the stored list text depends on (see ``Annotation.list_text``).
_STORED_FIELDS = ("uid", "object_type", "locked", "class_name", "color", "name", "comment", "shape",
                  "author_id", "created_at", "updated_at", "version", "measurements")


def _stored_properties(r: Any) -> dict[str, Any]:
    """:func:`_cacheable_properties` minus the µm figures, for orjson: datetimes encoded by
    orjson (UTC, same text as ``isoformat``) and the stored measurements JSON spliced unparsed."""
    stored = r.measurements
    return {
        "uuid": r.uid, "object_type": r.object_type, "locked": r.locked,
        "class": r.class_name, "color": r.color, "name": r.name, "comment": r.comment, "shape": r.shape,
        "author": r.author_id, "created_at": as_utc(r.created_at), "updated_at": as_utc(r.updated_at),
        "version": r.version,
        "measurements": orjson.Fragment(stored) if stored and stored.startswith("{") else {},
    }


def list_text_of(values: Mapping[str, Any]) -> str:
    """``Annotation.list_text`` for a row with these field values: '"properties":{…' left open,
    so the list can append the µm figures (they follow the slide's calibration) and the author name."""
    return '"properties":' + orjson.dumps(_stored_properties(SimpleNamespace(**values)))[:-1].decode()


def _row_values(annotation: Annotation) -> dict[str, Any]:
    return {name: getattr(annotation, name) for name in _STORED_FIELDS}


def _list_feature(r: Any, frame: SlideFrame) -> bytes:
    """A row's list feature text without its author name and closing braces.

    Spliced from the stored geometry and ``list_text`` when the row has one; rows without
    it (written before migration 0006) are serialised here, to the same bytes."""
    stored = r.list_text.encode() if r.list_text is not None else (
        b'"properties":' + orjson.dumps(_stored_properties(r))[:-1])
    figures = orjson.dumps(frame.measurements(r.geom_type, r.area_px, r.length_px))
    return b'{"type":"Feature","id":%d,"geometry":%s,%s,%s' % (r.id, r.geometry.encode(), stored, figures[1:-1])


def feature_json_text(annotation: Annotation, frame: SlideFrame) -> str:
    return _feature_text(annotation.id, annotation.geometry,
                         _api_properties(annotation, annotation.author.full_name if annotation.author else None, frame))


def feature_dict(annotation: Annotation, frame: SlideFrame) -> dict[str, Any]:
    return json.loads(feature_json_text(annotation, frame))


# ---------------------------------------------------------------- reading
def _ensure_view(user: User, slide: Slide) -> None:
    if policy.can(user, "annotation.view", slide):
        return
    policy.ensure(user, "slide.view", slide)  # hidden slide → 404
    raise Forbidden("Annotations are shown to technicians and clinicians once the report is signed.",
                    code="report_not_signed")


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None or text == "":
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values) \
            or values[0] > values[2] or values[1] > values[3]:
        raise ValidationFailed("bbox must be x0,y0,x1,y1 in slide pixels with x0 ≤ x1 and y0 ≤ y1.",
                               code="invalid_bbox")
    return values[0], values[1], values[2], values[3]


_LIST_COLUMNS = (Annotation.id, Annotation.uid, Annotation.object_type, Annotation.locked, Annotation.geometry,
                 Annotation.geom_type, Annotation.shape, Annotation.area_px, Annotation.length_px,
                 Annotation.class_name, Annotation.color, Annotation.name, Annotation.comment,
                 Annotation.measurements, Annotation.extra, Annotation.author_id, Annotation.version,
                 Annotation.created_at, Annotation.updated_at, Annotation.list_text)


def _filtered(query: Any, slide: Slide, bbox: tuple[float, float, float, float] | None,
              class_name: str | None, author_id: int | None, ids: list[int] | None = None) -> Any:
    query = query.where(Annotation.slide_id == slide.id, Annotation.deleted_at.is_(None))
    if bbox is not None:
        x0, y0, x1, y1 = bbox
        query = query.where(Annotation.min_x <= x1, Annotation.max_x >= x0,
                            Annotation.min_y <= y1, Annotation.max_y >= y0)
    if class_name is not None:
        query = query.where(Annotation.class_name == class_name)
    if author_id is not None:
        query = query.where(Annotation.author_id == author_id)
    if ids is not None:
        query = query.where(Annotation.id.in_(ids))
    return query.order_by(Annotation.id)


def _live_rows(session: Session, slide: Slide, *, bbox: tuple[float, float, float, float] | None = None,
               class_name: str | None = None, author_id: int | None = None,
               ids: list[int] | None = None) -> Iterable[Any]:
    """Plain rows (no ORM objects) for speed; the box test is a range query on the indexed edges."""
    query = select(*_LIST_COLUMNS, User.full_name.label("author_name")).join(User, User.id == Annotation.author_id)
    return session.execute(_filtered(query, slide, bbox, class_name, author_id, ids))


#: Up to this many uncached rows are fetched by id; more re-run the list's own query.
_BY_ID_MAX = 500


def _live_ids(session: Session, slide: Slide, *, bbox: tuple[float, float, float, float] | None = None,
              class_name: str | None = None, author_id: int | None = None) -> list[Any]:
    """Ids, versions and author names only (the feature texts come from the cache)."""
    query = select(Annotation.id, Annotation.version, User.full_name.label("author_name")) \
        .join(User, User.id == Annotation.author_id)
    return list(session.execute(_filtered(query, slide, bbox, class_name, author_id)))


def list_collection_text(session: Session, user: User, slide: Slide, *, bbox: str | None = None,
                         class_name: str | None = None, author: str | None = None) -> bytes:
    """The slide's live annotations (optionally those touching a viewport box) as a GeoJSON
    FeatureCollection, UTF-8 encoded (10,000 polygons are ~23 MB: encoded once, when cached)."""
    _ensure_view(user, slide)
    box = parse_bbox(bbox)
    author_id = None
    if author not in (None, ""):
        if not str(author).isdigit():
            raise ValidationFailed("author must be a user id.", code="invalid_author")
        author_id = int(author)
    frame = SlideFrame.of(slide)
    frame_key = (frame.mpp_x, frame.mpp_y)
    wanted = _live_ids(session, slide, bbox=box, class_name=class_name or None, author_id=author_id)
    keys = [(r.id, r.version) for r in wanted]
    texts = annotation_cache.lookup(slide.id, frame_key, keys)
    missing = [k for k in keys if k not in texts]
    if missing:
        # Many missing (a cold process): the same filtered query, full rows; a few: by id.
        rows = _live_rows(session, slide, bbox=box, class_name=class_name or None, author_id=author_id) \
            if len(missing) > _BY_ID_MAX else _live_rows(session, slide, ids=[k[0] for k in missing])
        fresh = {(r.id, r.version): _list_feature(r, frame) for r in rows}
        whole_slide = box is None and not class_name and author_id is None
        annotation_cache.add(slide.id, frame_key, fresh, live=keys if whole_slide else None)
        texts.update(fresh)
        # A row edited between the two queries (PostgreSQL reads each statement afresh) is
        # answered in its newer version; one deleted in between is left out.
        newer = {key[0]: text for key, text in fresh.items()}
        texts.update({k: newer[k[0]] for k in missing if k not in texts and k[0] in newer})
    return annotation_cache.collection((texts[k], r.author_name) for k, r in zip(keys, wanted) if k in texts)


def get_annotation(session: Session, user: User, slide: Slide, annotation_id: int) -> Annotation:
    _ensure_view(user, slide)
    annotation = session.get(Annotation, annotation_id)
    if annotation is None or annotation.slide_id != slide.id or annotation.deleted_at is not None:
        raise NotFound("No such annotation on this slide.")
    return annotation


# ---------------------------------------------------------------- REST edits
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
            raise ValidationFailed(f"Invalid geometry: {exc.reason}.", code="invalid_geometry") from None
    elif require_geometry:
        raise ValidationFailed("geometry is required.", code="invalid_geometry")
    if fields.get("class") is not None:
        if not isinstance(fields["class"], str):
            raise ValidationFailed("class must be a string.", code="invalid_field")
        edit.class_name = fields["class"]
    for key, limit in (("comment", MAX_COMMENT_LENGTH), ("name", MAX_NAME_LENGTH)):
        value = fields.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise ValidationFailed(f"{key} must be a string of at most {limit} characters.", code="invalid_field")
        setattr(edit, key, value)
    shape = fields.get("shape")
    if shape is not None and shape not in SHAPES:
        raise ValidationFailed(f"shape must be one of {', '.join(SHAPES)} (or null).", code="invalid_field")
    edit.shape = shape
    return edit


def _check_class(name: str | None) -> str | None:
    if name is None:
        return None
    color = palette_color(name)
    if color is None:
        known = ", ".join(c["name"] for c in annotation_classes())
        raise ValidationFailed(f"Unknown annotation class {name!r}; use one of: {known}.", code="unknown_class")
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


# ---------------------------------------------------------------- QuPath import / export
def parse_json_document(raw: bytes, *, limit: int = MAX_IMPORT_BYTES) -> Any:
    if len(raw) > limit:
        raise ValidationFailed(f"The file is larger than {limit // 2**20} MB.", code="import_too_large")
    try:
        return loads_bounded(raw)
    except UnicodeDecodeError:
        raise ValidationFailed("The file is not UTF-8 text.", code="invalid_json") from None
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"The file is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
                               code="invalid_json") from None


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
                    ip: str | None = None) -> ImportResult:
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
        rows.append({"slide_id": slide.id, "uid": uid, "author_id": user.id, **values,
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
                 details={"count": len(rows), "created": len(rows), "updated": len(updates),
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
