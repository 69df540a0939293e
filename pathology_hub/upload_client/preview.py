"""The scanner side of "slides visible before their upload ends" (issue #21).

Reads the slide locally with the same tiling code the server uses (:class:`SlideSource`, its
Deep Zoom geometry, :func:`render_tile_from`, :func:`build_pack`), so the preview's tiles have
exactly the server's tile size, overlap and colour handling, and packs the levels at 1/16 of
full resolution and coarser: a few megabytes for a multi-gigabyte slide.  The server checks
them again (domain/slides/preview.py); nothing here is trusted there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Levels at or below 1/2**PREVIEW_DEPTH of full resolution (the server's rule, same constant).
from pathology_hub.domain.slides.preview import PREVIEW_DEPTH


@dataclass(frozen=True)
class Preview:
    """A preview pack and the Deep Zoom geometry it belongs to."""

    pack: bytes
    width: int
    height: int
    tile_size: int
    overlap: int
    levels: tuple[int, ...]
    tiles: int

    def query(self) -> dict[str, int]:
        return {"width": self.width, "height": self.height, "tile_size": self.tile_size, "overlap": self.overlap}


def build_preview(path: Path | str, *, quality: int | None = None) -> Preview:
    """Preview of the slide file at ``path``; raises whatever OpenSlide raises for a file it cannot read."""
    from pathology_hub.tiling.pack import build_pack
    from pathology_hub.tiling.render import DEFAULT_QUALITY, derived_levels, render_tile_from
    from pathology_hub.tiling.source import SlideSource

    source = SlideSource(str(path))
    try:
        geom = source.geometry
        levels = tuple(lv for lv in range(geom.level_count) if geom.depth(lv) >= PREVIEW_DEPTH)
        q = quality or DEFAULT_QUALITY
        if derived_levels(source):
            # No small levels in the file: one pass over full resolution, not one per preview tile.
            entries = _from_one_pass(source, levels, q)
        else:
            # blank areas are sent as real (tiny) blank JPEGs: the server accepts only decodable tiles
            entries = [(lv, c, r, render_tile_from(source, lv, c, r, q)) for lv in levels
                       for r in range(geom.level_tiles(lv)[1]) for c in range(geom.level_tiles(lv)[0])]
        data, info = build_pack("preview", entries)
        return Preview(data, geom.width, geom.height, geom.tile_size, geom.overlap, levels, info.tiles)
    finally:
        source.close()


def _from_one_pass(source, levels: tuple[int, ...], quality: int) -> list[tuple[int, int, int, bytes]]:
    """The preview levels of a file without small levels, box-reduced from a mosaic at 1/16 that is
    assembled block by block (as the server's pipeline derives such levels), finest level first."""
    from pathology_hub.tiling.render import Mosaic, blank_jpeg, block_piece, render_derived

    geom = source.geometry
    mosaic = Mosaic(source, PREVIEW_DEPTH)
    for bx, by in geom.iter_blocks():
        mosaic.add(bx, by, block_piece(source, bx, by, PREVIEW_DEPTH))
    chain = mosaic.chain()
    entries = []
    for level in sorted(levels, reverse=True):
        for lv, col, row, data in render_derived(chain, mosaic, geom, level, quality, source.background):
            if data is None:
                _, _, w, h = geom.tile_box(lv, col, row)
                data = blank_jpeg((w, h), source.background, quality)
            entries.append((lv, col, row, data))
    return sorted(entries, key=lambda e: (e[0], e[2], e[1]))  # level, row, column: the pack's usual order
