"""The slide's stored JSON (description from inspection, quality report) read without failing:
a missing or damaged value reads as empty, so a page never breaks on one slide.
"""

from __future__ import annotations

import json
from typing import Any

from pathology_hub.models import Slide


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
