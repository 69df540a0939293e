"""Geometry must equal DeepZoomGenerator(limit_bounds=True), including non-zero bounds."""

from __future__ import annotations

import math

import pytest
from openslide.deepzoom import DeepZoomGenerator

from pathology_hub.tiling.geometry import OVERLAP, TILE_SIZE, Bounds, Geometry


class StubSlide:
    """The attributes DeepZoomGenerator reads, for bounds no small real file carries."""

    def __init__(self, w: int, h: int, props: dict[str, str]) -> None:
        self.dimensions = (w, h)
        self.level_dimensions = ((w, h), (math.ceil(w / 4), math.ceil(h / 4)))
        self.level_count = 2
        self.level_downsamples = (1.0, w / math.ceil(w / 4))
        self.properties = props

    def get_best_level_for_downsample(self, d: float) -> int:
        return 1 if d >= self.level_downsamples[1] else 0


CASES = [
    (1, 1, {}), (255, 257, {}), (254, 254, {}), (2000, 1500, {}), (40000, 30000, {}),
    (5000, 4000, {"openslide.bounds-x": "123", "openslide.bounds-y": "77",
                  "openslide.bounds-width": "3001", "openslide.bounds-height": "2555"}),
]


#: (tile_size, overlap): the layout new pyramids use, and the one pyramids stored before it use.
LAYOUTS = [(TILE_SIZE, OVERLAP), (254, 1)]


def test_new_pyramids_use_256_pixel_tiles_without_overlap():
    """One stored tile = one Deep Zoom tile = one IIIF tile = one DICOM frame (docs/tile-layout.md)."""
    assert (TILE_SIZE, OVERLAP) == (256, 0)
    g = Geometry(1000, 600)
    assert (g.tile_size, g.overlap) == (256, 0)
    assert g.tile_box(g.max_level, 1, 1) == (256, 256, 256, 256)
    assert g.tile_box(g.max_level, 3, 2) == (768, 512, 232, 88)
    assert 'TileSize="256"' in g.dzi_xml() and 'Overlap="0"' in g.dzi_xml()


@pytest.mark.parametrize("tile_size,overlap", LAYOUTS)
@pytest.mark.parametrize("w,h,props", CASES)
def test_geometry_matches_deepzoomgenerator(w, h, props, tile_size, overlap):
    dz = DeepZoomGenerator(StubSlide(w, h, props), tile_size, overlap, limit_bounds=True)
    b = Bounds.from_properties(props, (w, h))
    g = Geometry(b.width, b.height, tile_size, overlap)
    assert g.level_count == dz.level_count == math.ceil(math.log2(max(b.width, b.height))) + 1
    assert g.level_dimensions == dz.level_dimensions
    assert tuple(g.level_tiles(lv) for lv in range(g.level_count)) == dz.level_tiles
    assert g.tile_count() == dz.tile_count
    for level in range(g.level_count):
        cols, rows = g.level_tiles(level)
        for col in {0, 1, cols // 2, cols - 1} & set(range(cols)):
            for row in {0, 1, rows // 2, rows - 1} & set(range(rows)):
                (l0_loc, _, _), z_size = dz._get_tile_info(level, (col, row))
                x, y, tw, th = g.tile_box(level, col, row)
                assert (tw, th) == z_size
                if level == g.max_level:  # full resolution: same level-0 pixels, bounds offset included
                    assert (x + b.x, y + b.y) == l0_loc


def test_bounds_offset_and_size():
    b = Bounds.from_properties({"openslide.bounds-x": "10", "openslide.bounds-y": "20",
                                "openslide.bounds-width": "300", "openslide.bounds-height": "400"}, (1000, 1000))
    assert (b.x, b.y, b.width, b.height) == (10, 20, 300, 400)
    assert Bounds.from_properties({}, (640, 480)) == Bounds(0, 0, 640, 480)


def test_out_of_range_tiles_rejected():
    g = Geometry(255, 257, 254, 1)
    cols, rows = g.level_tiles(g.max_level)
    assert (cols, rows) == (2, 2)
    assert g.tile_box(g.max_level, 1, 1) == (253, 253, 2, 4)
    for bad in [(g.level_count, 0, 0), (g.max_level, 2, 0), (0, 0, 1), (-1, 0, 0)]:
        with pytest.raises(IndexError):
            g.tile_box(*bad)
    g = Geometry(255, 257)
    assert g.level_tiles(g.max_level) == (1, 2)
    assert g.tile_box(g.max_level, 0, 1) == (0, 256, 255, 1)
    for bad in [(g.max_level, 1, 0), (g.max_level, 0, 2)]:
        with pytest.raises(IndexError):
            g.tile_box(*bad)


@pytest.mark.parametrize("tile_size,overlap", LAYOUTS)
def test_block_regions_give_even_starts_and_cover_tiles(tile_size, overlap):
    g = Geometry(40000, 30000, tile_size, overlap)
    for bx, by in [(0, 0), (3, 2), (9, 7)]:
        x0, y0, x1, y1 = g.block_region(bx, by)
        assert x0 % 16 == 0 and y0 % 16 == 0
        for depth, level in enumerate(sorted(g.fine_levels, reverse=True)):
            for col, row in g.block_tiles(bx, by, level):
                x, y, w, h = g.tile_box(level, col, row)
                assert x0 >> depth <= x and x + w <= math.ceil(x1 / 2 ** depth)
                assert y0 >> depth <= y and y + h <= math.ceil(y1 / 2 ** depth)
