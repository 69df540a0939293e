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
    # A sparse sample that already fails proves "not blank" cheaply (most tissue tiles stop here).
    if tile.shape[0] > 16 and tile.shape[1] > 16 and not _within(tile[::8, ::8], background, tolerance):
        return False
    return _within(tile, background, tolerance)


def _within(arr: np.ndarray, background: tuple[int, int, int], tolerance: int) -> bool:
    r, g, b = background
    if r == g == b or arr.ndim == 2:  # grey background or grey pixels: whole-array reductions
        return int(arr.min()) >= r - tolerance and int(arr.max()) <= r + tolerance
    flat = np.ascontiguousarray(arr).reshape(-1, 3)
    lo = flat.min(axis=0).astype(np.int16)
    hi = flat.max(axis=0).astype(np.int16)
    bg = np.asarray(background, np.int16)
    return bool((lo >= bg - tolerance).all() and (hi <= bg + tolerance).all())
