"""The slide's stored JSON (description from inspection, quality report) read without failing:
a missing or damaged value reads as empty, so a page never breaks on one slide.
"""

from __future__ import annotations

import json
from typing import Any

from pathology_hub.models import Slide
from pathology_hub.slides.quality import WHOLE_SLIDE_MIN_SIDE


def description_of(slide: Slide) -> dict[str, Any]:
    try:
        return json.loads(slide.description or "{}")
    except ValueError:
        return {}


def quality_of(slide: Slide) -> dict[str, Any]:
    try:
        return json.loads(slide.quality or "{}")
    except ValueError:
        return {}


def content_of(slide: Slide) -> str | None:
    """"photo", "fluorescence", "tiny" (smaller than a tile) or "wsi"; None before inspection."""
    desc = description_of(slide)
    if not desc:
        return None
    if desc.get("kind") == "photo":
        return "photo"
    if int(desc.get("width") or 0) < WHOLE_SLIDE_MIN_SIDE and int(desc.get("height") or 0) < WHOLE_SLIDE_MIN_SIDE:
        return "tiny"
    if desc.get("modality") == "fluorescence":
        return "fluorescence"
    return "wsi"
