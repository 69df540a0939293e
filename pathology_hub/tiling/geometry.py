"""Deep Zoom geometry, identical to ``openslide.deepzoom.DeepZoomGenerator(limit_bounds=True)``.

Kept free of OpenSlide objects (plain numbers in, plain numbers out) so the
reader, the pipeline and the on-demand renderer agree on every tile's extent
without opening the slide, and so bounds logic can be tested with a stub.
"""

from __future__ import annotations

import math
from io import BytesIO
from xml.etree import ElementTree
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, Mapping

#: New pyramids: 256-pixel tiles without overlap, so one stored tile is one Deep Zoom tile,
#: one IIIF tile and one DICOM frame (docs/tile-layout.md has the measurements behind it).
#: Pyramids stored earlier with 254/1 keep working: their manifest records tile_size and
#: overlap, and :class:`Geometry` takes both as parameters.
TILE_SIZE = 256
OVERLAP = 0
#: Level-0 blocks are BLOCK_TILES x BLOCK_TILES Deep Zoom tiles; 2**FINE_LEVELS == BLOCK_TILES,
#: so each block also contains whole tiles of the FINE_LEVELS - 1 levels below it.
BLOCK_TILES = 16
FINE_LEVELS = 5


@dataclass(frozen=True)
class Bounds:
    """The slide area Deep Zoom shows, in level-0 pixels (OpenSlide ``bounds-*`` properties)."""

    x: int
    y: int
    width: int
    height: int

    @classmethod
    def from_properties(cls, props: Mapping[str, str], dimensions: tuple[int, int]) -> "Bounds":
        """Same rule as DeepZoomGenerator: missing properties mean the full slide."""
        w, h = dimensions
        bx = int(props.get("openslide.bounds-x", 0))
        by = int(props.get("openslide.bounds-y", 0))
        # DeepZoomGenerator scales level dims by bounds/size and rounds up; at level 0 that is the bound.
        bw = int(math.ceil(w * (int(props.get("openslide.bounds-width", w)) / w)))
        bh = int(math.ceil(h * (int(props.get("openslide.bounds-height", h)) / h)))
        return cls(bx, by, bw, bh)


@dataclass(frozen=True)
class Geometry:
    """Level sizes and tile extents of one Deep Zoom pyramid."""

    width: int
    height: int
    tile_size: int = TILE_SIZE
    overlap: int = OVERLAP

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")

    @cached_property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        size = (self.width, self.height)
        dims = [size]
        while size[0] > 1 or size[1] > 1:
            size = (max(1, math.ceil(size[0] / 2)), max(1, math.ceil(size[1] / 2)))
            dims.append(size)
        return tuple(reversed(dims))

    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)

    @property
    def max_level(self) -> int:
        return self.level_count - 1

    def level_tiles(self, level: int) -> tuple[int, int]:
        w, h = self.level_dimensions[level]
        return math.ceil(w / self.tile_size), math.ceil(h / self.tile_size)

    def tile_count(self, level: int | None = None) -> int:
        levels = range(self.level_count) if level is None else [level]
        return sum(c * r for c, r in (self.level_tiles(lv) for lv in levels))

    def depth(self, level: int) -> int:
        """How many 2x steps ``level`` is below full resolution (0 = the slide's own pixels)."""
        return self.max_level - level

    def _axis(self, t: int, t_lim: int, z_lim: int) -> tuple[int, int]:
        tl = self.overlap if t != 0 else 0
        br = self.overlap if t != t_lim - 1 else 0
        start = self.tile_size * t - tl
        size = min(self.tile_size, z_lim - self.tile_size * t) + tl + br
        return start, size

    def tile_box(self, level: int, col: int, row: int) -> tuple[int, int, int, int]:
        """(x, y, width, height) of a tile in its level's pixels, overlap included."""
        cols, rows = self.level_tiles(level)
        if not (0 <= level < self.level_count and 0 <= col < cols and 0 <= row < rows):
            raise IndexError(f"tile {level}/{col}_{row} is outside the pyramid")
        w, h = self.level_dimensions[level]
        x, tw = self._axis(col, cols, w)
        y, th = self._axis(row, rows, h)
        return x, y, tw, th

    def tile_sizes(self) -> set[tuple[int, int]]:
        """Every distinct tile size in the pyramid (for the shared blank tiles)."""
        sizes = set()
        for level in range(self.level_count):
            cols, rows = self.level_tiles(level)
            for c in {0, 1 % cols, cols - 1} & set(range(cols)):
                for r in {0, 1 % rows, rows - 1} & set(range(rows)):
                    _, _, w, h = self.tile_box(level, c, r)
                    sizes.add((w, h))
        return sizes

    # --- blocks: the unit of work and of storage for the fine levels ---

    @property
    def block_span(self) -> int:
        return BLOCK_TILES * self.tile_size

    @cached_property
    def fine_levels(self) -> list[int]:
        """Levels built from level-0 blocks (full resolution and up to 4 halvings)."""
        return [lv for lv in range(self.level_count) if self.depth(lv) < FINE_LEVELS]

    @cached_property
    def coarse_levels(self) -> list[int]:
        """Levels rendered directly from the slide's own low-resolution levels (small, built first)."""
        return [lv for lv in range(self.level_count) if self.depth(lv) >= FINE_LEVELS]

    def blocks(self) -> tuple[int, int]:
        cols, rows = self.level_tiles(self.max_level)
        return math.ceil(cols / BLOCK_TILES), math.ceil(rows / BLOCK_TILES)

    def iter_blocks(self) -> Iterator[tuple[int, int]]:
        bc, br = self.blocks()
        for by in range(br):
            for bx in range(bc):
                yield bx, by

    def block_of(self, level: int, col: int, row: int) -> tuple[int, int]:
        step = BLOCK_TILES >> self.depth(level)
        return col // step, row // step

    def block_tiles(self, bx: int, by: int, level: int) -> Iterator[tuple[int, int]]:
        """Tiles of a fine ``level`` lying in block (bx, by), row-major."""
        step = BLOCK_TILES >> self.depth(level)
        cols, rows = self.level_tiles(level)
        for r in range(by * step, min(rows, (by + 1) * step)):
            for c in range(bx * step, min(cols, (bx + 1) * step)):
                yield c, r

    def block_region(self, bx: int, by: int) -> tuple[int, int, int, int]:
        """Level-0 (x0, y0, x1, y1) a block needs: its tiles plus a halo that still gives the
        overlap after FINE_LEVELS - 1 halvings (none without overlap); starts stay even at every step."""
        halo = self.overlap << (FINE_LEVELS - 1)
        span = self.block_span
        x0 = max(0, bx * span - halo)
        y0 = max(0, by * span - halo)
        x1 = min(self.width, (bx + 1) * span + halo)
        y1 = min(self.height, (by + 1) * span + halo)
        return x0, y0, x1, y1

    def tile_region_l0(self, level: int, col: int, row: int) -> tuple[int, int, int, int]:
        """Level-0 (x0, y0, x1, y1) of this fine tile's footprint (what its resampling reads)."""
        x, y, w, h = self.tile_box(level, col, row)
        d = 1 << self.depth(level)
        return x * d, y * d, min(self.width, (x + w) * d), min(self.height, (y + h) * d)

    def dzi_xml(self, fmt: str = "jpeg") -> str:
        """Same document DeepZoomGenerator.get_dzi() produces."""
        image = ElementTree.Element("Image", TileSize=str(self.tile_size), Overlap=str(self.overlap),
                                    Format=fmt, xmlns="http://schemas.microsoft.com/deepzoom/2008")
        ElementTree.SubElement(image, "Size", Width=str(self.width), Height=str(self.height))
        buf = BytesIO()
        ElementTree.ElementTree(element=image).write(buf, encoding="UTF-8")
        return buf.getvalue().decode("UTF-8")
