"""Object keys of a slide's stored files: the original (by SHA-256), the pyramid, the thumbnail
and associated images.

One owner for these names, so the upload, the jobs, the web layer and deletion agree on where a
slide's bytes live.
"""

from __future__ import annotations

import re

from pathology_hub.models import Slide


SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def original_key(sha256: str) -> str:
    return f"originals/{sha256[:2]}/{sha256}"


def pyramid_prefix(slide: Slide) -> str:
    return f"pyramids/{slide.uid}/v{slide.pyramid_version}"


def slide_prefix(slide: Slide) -> str:
    return f"slides/{slide.uid}"


def associated_key(slide: Slide, name: str) -> str:
    return f"{slide_prefix(slide)}/associated/{SAFE_NAME.sub('_', name)}.png"


def thumbnail_key(slide: Slide) -> str:
    return f"{slide_prefix(slide)}/thumbnail.jpg"
