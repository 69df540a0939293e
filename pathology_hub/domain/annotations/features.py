"""Serialising annotations as GeoJSON features: the API's feature text, and the stored
``list_text`` that lets a list splice rows without parsing them again.

One place for the bytes of a feature, so the single-annotation answer, the list, the cache and
the stored text never disagree.
"""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace
from typing import Any, Mapping

import orjson

from pathology_hub.domain.annotations.geometry import SlideFrame
from pathology_hub.models import Annotation, as_utc


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
