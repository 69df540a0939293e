"""DICOM frames from the stored Deep Zoom tiles.

Frame size equals the pyramid's tile size, and frame ``n`` of a level is tile ``(col, row)`` with
``n - 1 = row * cols + col`` (TILED_FULL, row-major). What is re-encoded, and why:

* 256-px pyramids without overlap (speed19's new layout): every full-size tile **is** its frame and is
  returned byte for byte. Only the right and bottom edge tiles, which are smaller than a frame, are
  padded with white to the full frame size and re-encoded (TILED_FULL needs equal frames).
* 254-px pyramids with 1 px overlap (older pyramids): a stored tile carries a 1-px border from its
  neighbours, so every frame is the tile cropped to its own 254 x 254 cells and re-encoded (quality 90),
  edge frames padded as above.
"""

from __future__ import annotations

import io
from typing import Protocol

from PIL import Image

from ...tiling.geometry import Geometry

#: JPEG quality of re-encoded frames (cropped overlap tiles, padded edge tiles).
REENCODE_QUALITY = 90
PAD_COLOUR = (255, 255, 255)


class TileSource(Protocol):
    geometry: Geometry

    def tile(self, level: object, col: object, row: object) -> bytes: ...


def frame_count(geometry: Geometry, level: int) -> int:
    cols, rows = geometry.level_tiles(level)
    return cols * rows


def frame_address(geometry: Geometry, level: int, number: int) -> tuple[int, int]:
    """(col, row) of 1-based frame ``number``; IndexError outside the level."""
    cols, rows = geometry.level_tiles(level)
    if not 1 <= number <= cols * rows:
        raise IndexError(f"frame {number} is outside level {level} ({cols * rows} frames)")
    return (number - 1) % cols, (number - 1) // cols


def is_passthrough(geometry: Geometry, level: int, col: int, row: int) -> bool:
    """True when the stored tile is exactly the frame (no overlap, full size)."""
    if geometry.overlap:
        return False
    _, _, w, h = geometry.tile_box(level, col, row)
    return w == geometry.tile_size and h == geometry.tile_size


def frame_from_tile(geometry: Geometry, level: int, col: int, row: int, data: bytes) -> bytes:
    """The frame for tile (col, row) given the stored tile's JPEG bytes."""
    if is_passthrough(geometry, level, col, row):
        return data
    size = geometry.tile_size
    left = geometry.overlap if col > 0 else 0
    top = geometry.overlap if row > 0 else 0
    level_w, level_h = geometry.level_dimensions[level]
    own_w = min(size, level_w - col * size)
    own_h = min(size, level_h - row * size)
    with Image.open(io.BytesIO(data)) as img:
        cell = img.convert("RGB").crop((left, top, left + own_w, top + own_h))
    frame = Image.new("RGB", (size, size), PAD_COLOUR)
    frame.paste(cell, (0, 0))
    out = io.BytesIO()
    frame.save(out, "JPEG", quality=REENCODE_QUALITY)
    return out.getvalue()


def read_frame(source: TileSource, level: int, number: int) -> bytes:
    """Frame ``number`` (1-based) of ``level``, read from the pyramid (TileNotFound/TileNotReady pass)."""
    col, row = frame_address(source.geometry, level, number)
    return frame_from_tile(source.geometry, level, col, row, source.tile(level, col, row))
