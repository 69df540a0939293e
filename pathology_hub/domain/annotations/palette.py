"""The class palette of the institution network: the default classes or the JSON file named by
``ANNOTATION_CLASSES_FILE`` (re-read when the file changes), and the colour of a class.

Alone because the viewer, figures in reports and the writes all ask "which classes exist and
what colour is this one", and the file's errors must read the same everywhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pathology_hub.domain.annotations.qupath_format import MAX_CLASS_LENGTH
from pathology_hub.domain.errors import DomainError


DEFAULT_CLASSES: tuple[dict[str, str], ...] = (
    {"name": "tumour", "color": "#d62728"},
    {"name": "stroma", "color": "#ff7f0e"},
    {"name": "necrosis", "color": "#7f7f7f"},
    {"name": "inflammation", "color": "#1f77b4"},
    {"name": "mitosis", "color": "#9467bd"},
    {"name": "other", "color": "#2ca02c"},
)


class PaletteMisconfigured(DomainError):
    status = 500
    code = "annotation_classes_misconfigured"


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
