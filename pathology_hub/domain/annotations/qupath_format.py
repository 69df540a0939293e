"""QuPath GeoJSON exchange: read every property dialect QuPath has written, write the current one.

Pure functions over plain dicts (no database, no Flask), so the mapping can be
tested on its own and reused by scripts.

Reading (QuPath 0.2 … 0.5 and hand-made files):

* object type from ``objectType``, or the legacy ``object_type`` / ``type`` keys;
  ``PathDetectionObject``-style names are understood too;
* class from ``classification`` ``{name, color: [r, g, b]}`` or the legacy
  ``{name, colorRGB: <packed ARGB int>}`` (a bare string is taken as the name);
* ``measurements`` as an object map, or the older list ``[{name, value}]``;
  non-finite values (QuPath writes NaN) become ``null``;
* the comment from ``properties.comment`` or, when absent, ``properties.metadata.comment``;
* any other property (``color``, ``nucleusGeometry``, other metadata …) is kept
  verbatim and written back on export, so a round trip loses nothing.

Writing: ``objectType``, ``classification {name, color}``, ``name``, ``isLocked``
(annotations only; detections are always locked), ``measurements`` as an object
map, the comment in ``metadata.comment`` (QuPath keeps object metadata, so the
comment survives a trip through QuPath), and ``shape`` for our editor.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

OBJECT_TYPES = ("annotation", "detection", "cell")
SHAPES = ("ellipse", "rectangle")
HEX_COLOR = re.compile(r"^#[0-9a-f]{6}$")
MAX_ID_LENGTH = 64
MAX_NAME_LENGTH = 200
MAX_CLASS_LENGTH = 100
MAX_COMMENT_LENGTH = 20_000
#: Property keys this module interprets; everything else is carried through untouched.
_CONSUMED = {"objectType", "object_type", "type", "classification", "isLocked", "measurements", "metadata",
             "name", "comment", "shape"}


class FeatureError(ValueError):
    """One feature is unusable; ``reason`` is shown to the user next to the feature's index and id."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class FeatureRecord:
    """What we keep of one imported feature (geometry is validated separately)."""

    uid: str | None
    geometry: Any
    object_type: str = "annotation"
    locked: bool = False
    class_name: str | None = None
    color: str | None = None
    name: str = ""
    comment: str = ""
    shape: str | None = None
    measurements: dict[str, float | None] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- colours
def rgb_to_hex(value: Any) -> str:
    if (not isinstance(value, (list, tuple)) or len(value) not in (3, 4)
            or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value[:3])):
        raise FeatureError("colour must be [r, g, b] with integers 0-255")
    return "#%02x%02x%02x" % tuple(value[:3])


def packed_to_hex(value: Any) -> str:
    """QuPath's legacy ``colorRGB``: a signed 32-bit ARGB integer."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise FeatureError("classification.colorRGB must be an integer")
    return "#%06x" % (value & 0xFFFFFF)


def display_color(record: "FeatureRecord") -> str | None:
    """The class colour, else the object's own ``color`` property (kept verbatim in ``extra`` as well)."""
    if record.color:
        return record.color
    try:
        return rgb_to_hex(record.extra.get("color"))
    except FeatureError:
        return None


def hex_to_rgb(value: str) -> list[int]:
    return [int(value[i:i + 2], 16) for i in (1, 3, 5)]


# ---------------------------------------------------------------- reading
def normalise_object_type(value: Any) -> str:
    text = str(value).strip().lower()
    for kind in OBJECT_TYPES:
        if text == kind or text == f"path{kind}object":
            return kind
    if text in ("pathannotationobject",):
        return "annotation"
    raise FeatureError(f"unsupported objectType {str(value)[:40]!r} (annotation, detection or cell)")


def _object_type(props: dict) -> str:
    for key in ("objectType", "object_type", "type"):
        if key in props and props[key] is not None:
            return normalise_object_type(props[key])
    return "annotation"


def _classification(value: Any) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, str):
        name, color = value, None
    elif isinstance(value, dict):
        name = value.get("name")
        if not isinstance(name, str):
            raise FeatureError("classification.name must be a string")
        if value.get("color") is not None:
            color = rgb_to_hex(value["color"])
        elif value.get("colorRGB") is not None:
            color = packed_to_hex(value["colorRGB"])
        else:
            color = None
    else:
        raise FeatureError("classification must be an object {name, color}")
    name = name.strip()
    if not name:
        return None, color
    if len(name) > MAX_CLASS_LENGTH:
        raise FeatureError(f"class name longer than {MAX_CLASS_LENGTH} characters")
    return name, color


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise FeatureError(f"measurement {what!r} must be a number")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise FeatureError(f"measurement {what!r} must be a number") from None
    if not isinstance(value, (int, float)):
        raise FeatureError(f"measurement {what!r} must be a number")
    return value if math.isfinite(value) else None


def read_measurements(value: Any) -> dict[str, float | None]:
    """Both QuPath forms: ``{"Area µm^2": 12.5}`` and the older ``[{"name": …, "value": …}]``."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): _number(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        out: dict[str, float | None] = {}
        for item in value:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise FeatureError("measurements list entries must be {name, value}")
            out[item["name"]] = _number(item.get("value"), item["name"])
        return out
    raise FeatureError("measurements must be an object or a list of {name, value}")


def _text(value: Any, what: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise FeatureError(f"{what} must be a string")
    if len(value) > limit:
        raise FeatureError(f"{what} longer than {limit} characters")
    return value


def read_feature(obj: Any) -> FeatureRecord:
    """One GeoJSON Feature in any QuPath dialect → :class:`FeatureRecord` (geometry unchecked)."""
    if not isinstance(obj, dict) or obj.get("type") != "Feature":
        raise FeatureError('not a GeoJSON Feature (expected "type": "Feature")')
    props = obj.get("properties")
    if props is None:
        props = {}
    if not isinstance(props, dict):
        raise FeatureError("properties must be an object")
    raw_id = obj.get("id")
    uid = None
    if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) and 0 < len(str(raw_id)) <= MAX_ID_LENGTH:
        uid = str(raw_id)
    object_type = _object_type(props)
    class_name, color = _classification(props.get("classification"))
    metadata = props.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise FeatureError("metadata must be an object")
    metadata = dict(metadata or {})
    comment = props.get("comment")
    meta_comment = metadata.pop("comment", None)
    if comment is None:
        comment = meta_comment
    shape = props.get("shape")
    extra = {k: v for k, v in props.items() if k not in _CONSUMED}
    if metadata:
        extra["metadata"] = metadata
    try:
        json.dumps(extra, allow_nan=False)
    except ValueError:
        raise FeatureError("properties contain NaN or Infinity, which JSON cannot carry") from None
    return FeatureRecord(
        uid=uid, geometry=obj.get("geometry"), object_type=object_type,
        locked=object_type != "annotation" or props.get("isLocked") is True,
        class_name=class_name, color=color,
        name=_text(props.get("name"), "name", MAX_NAME_LENGTH),
        comment=_text(comment, "comment", MAX_COMMENT_LENGTH),
        shape=shape if shape in SHAPES else None,
        measurements=read_measurements(props.get("measurements")),
        extra=extra)


def features_of(document: Any) -> list[Any]:
    """A FeatureCollection, a single Feature, or a bare list of features → the list of features."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        if document.get("type") == "FeatureCollection" and isinstance(document.get("features"), list):
            return document["features"]
        if document.get("type") == "Feature":
            return [document]
    raise FeatureError("expected a GeoJSON FeatureCollection, a Feature, or a list of features")


# ---------------------------------------------------------------- writing
def qupath_properties(*, object_type: str, locked: bool, class_name: str | None, color: str | None, name: str,
                      comment: str, shape: str | None, measurements: dict, extra: dict) -> dict[str, Any]:
    """Properties of one exported feature, in the form current QuPath writes."""
    props: dict[str, Any] = {"objectType": object_type}
    if class_name:
        props["classification"] = {"name": class_name}
        if color and HEX_COLOR.match(color):
            props["classification"]["color"] = hex_to_rgb(color)
    if name:
        props["name"] = name
    if object_type == "annotation":
        props["isLocked"] = bool(locked)
    if measurements:
        props["measurements"] = measurements
    metadata = dict(extra.get("metadata") or {})
    if comment:
        metadata["comment"] = comment
    if metadata:
        props["metadata"] = metadata
    if shape:
        props["shape"] = shape
    for key, value in extra.items():
        if key != "metadata":
            props.setdefault(key, value)
    return props
