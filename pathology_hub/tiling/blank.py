"""Blank-glass detection from a tile's own pixels.

A false "blank" silently deletes tissue from the viewer, a false "not blank"
only costs one JPEG, so the rule is strict: every pixel must lie within
``tolerance`` of the background in every channel. A 3x3 speck of faint
tissue therefore keeps its tile.
"""

from __future__ import annotations

import numpy as np

#: Largest per-channel deviation from the background still counted as glass (covers JPEG noise).
TOLERANCE = 8


def parse_colour(hex_rgb: str | None) -> tuple[int, int, int]:
    """OpenSlide's ``openslide.background-color`` (``RRGGBB``) or white when absent."""
    text = (hex_rgb or "ffffff").lstrip("#")
    try:
        return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
    except (ValueError, IndexError):
        return 255, 255, 255


def is_blank(tile: np.ndarray, background: tuple[int, int, int], tolerance: int = TOLERANCE) -> bool:
    """True when every pixel of the HxWx3 ``tile`` is within ``tolerance`` of ``background``."""
    if tile.size == 0:
        return True
    lo = tile.min(axis=(0, 1)).astype(np.int16)
    hi = tile.max(axis=(0, 1)).astype(np.int16)
    bg = np.asarray(background, np.int16)
    return bool((lo >= bg - tolerance).all() and (hi <= bg + tolerance).all())
