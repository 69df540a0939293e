"""IIIF Image API 3.0 level 0 over the Deep Zoom pyramid: which stored tile a request names, and what
is refused (400 bad syntax, 501 beyond level 0), for 256-px tiles without overlap and for 254/1."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pathology_hub.domain import iiif
from pathology_hub.tiling.geometry import Geometry

G = Geometry(5000, 3000, 256, 0)      # new pyramids
OLD = Geometry(5000, 3000, 254, 1)    # pyramids stored before the layout change


def test_info_lists_the_tile_grid_and_whole_image_sizes():
    doc = iiif.info("http://x/iiif/3/7", G)
    assert doc["@context"] == "http://iiif.io/api/image/3/context.json" and doc["type"] == "ImageService3"
    assert doc["profile"] == "level0" and (doc["width"], doc["height"]) == (5000, 3000)
    assert doc["tiles"] == [{"width": 256, "scaleFactors": [1, 2, 4, 8, 16, 32]}]
    assert doc["sizes"][-1] == {"width": 1250, "height": 750} and doc["sizes"][0] == {"width": 1, "height": 1}
    assert (doc["maxWidth"], doc["maxHeight"]) == (1250, 750)


@pytest.mark.parametrize("region, size, expected", [
    ("0,0,256,256", "256,", (G.max_level, 0, 0, 256, 256)),
    ("4864,2816,136,184", "136,", (G.max_level, 19, 11, 136, 184)),          # the bottom-right edge tile
    ("512,0,512,512", "256,256", (G.max_level - 1, 1, 0, 256, 256)),
    ("4096,2048,904,952", "!226,238", (G.max_level - 2, 4, 2, 226, 238)),    # an edge at scale 4
    ("0,0,5000,3000", "157,", (G.max_level - 5, 0, 0, 157, 94)),             # one tile at scale 32
])
def test_a_tile_request_names_one_stored_tile(region, size, expected):
    req = iiif.parse(G, region, size, "0", "default", "jpg")
    assert (req.level, req.col, req.row, req.width, req.height) == expected and not req.whole


def test_full_max_is_the_largest_whole_level_on_offer():
    req = iiif.parse(G, "full", "max", "0", "default", "jpg")
    assert req.whole and (req.width, req.height) == (1250, 750) and req.level == G.max_level - 2
    listed = iiif.parse(G, "full", "625,", "0", "default", "jpg")
    assert listed.whole and listed.level == G.max_level - 3


@pytest.mark.parametrize("parts, error", [
    (("0,0,256,256", "256,", "90", "default", "jpg"), iiif.IiifNotImplemented),   # rotation
    (("0,0,256,256", "256,", "0", "gray", "jpg"), iiif.IiifNotImplemented),       # quality
    (("0,0,256,256", "256,", "0", "default", "png"), iiif.IiifNotImplemented),    # format
    (("10,10,256,256", "256,", "0", "default", "jpg"), iiif.IiifNotImplemented),  # off the tile grid
    (("0,0,256,256", "128,", "0", "default", "jpg"), iiif.IiifNotImplemented),    # resampled tile
    (("pct:10,10,10,10", "max", "0", "default", "jpg"), iiif.IiifNotImplemented),
    (("0,0,256,256", "full", "0", "default", "jpg"), iiif.IiifBadRequest),        # 'full' is 2.x syntax
    (("0,0,0,256", "max", "0", "default", "jpg"), iiif.IiifBadRequest),
    (("9000,0,256,256", "max", "0", "default", "jpg"), iiif.IiifBadRequest),
    (("nonsense", "max", "0", "default", "jpg"), iiif.IiifBadRequest),
    (("0,0,256,256", "max", "x", "default", "jpg"), iiif.IiifBadRequest),
    (("0,0,256,256", "max", "0", "sepia", "jpg"), iiif.IiifBadRequest),
    (("0,0,256,256", "max", "0", "default", "exe"), iiif.IiifBadRequest),
])
def test_what_level_0_refuses_and_how(parts, error):
    with pytest.raises(error):
        iiif.parse(G, *parts)


def _jpeg(arr: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(arr).save(out, "JPEG", quality=95)
    return out.getvalue()


def test_without_overlap_the_stored_bytes_are_served_unchanged():
    stored = _jpeg(np.full((256, 256, 3), 120, np.uint8))
    req = iiif.parse(G, "256,256,256,256", "max", "0", "default", "jpg")
    assert iiif.tile_body(G, req, stored) is stored


def test_an_overlapping_tile_is_cut_to_its_own_cell():
    # tile (1, 1) of a 254/1 pyramid: 1 px from each neighbour around a 254 px cell
    arr = np.zeros((256, 256, 3), np.uint8)
    arr[1:255, 1:255] = (200, 40, 40)
    req = iiif.parse(OLD, "254,254,254,254", "max", "0", "default", "jpg")
    assert (req.col, req.row, req.width, req.height) == (1, 1, 254, 254)
    with Image.open(io.BytesIO(iiif.tile_body(OLD, req, _jpeg(arr)))) as img:
        assert img.size == (254, 254)
        cell = np.asarray(img.convert("RGB"), np.int16)
    # the neighbours' black 1-px border is gone: every row and column, edges included, is red
    assert cell[:, :, 0].min() > 140 and np.abs(cell[8:-8, 8:-8] - (200, 40, 40)).max() < 12


def test_a_whole_level_is_composed_from_its_cells():
    small = Geometry(600, 300, 254, 1)
    req = iiif.parse(small, "full", "max", "0", "default", "jpg")
    colours = {}

    def tile(level, col, row):
        x, y, w, h = small.tile_box(level, col, row)
        colours[(col, row)] = (40 * col + 20, 60 * row + 30, 90)
        arr = np.zeros((h, w, 3), np.uint8)
        arr[:] = colours[(col, row)]
        return _jpeg(arr)
    with Image.open(io.BytesIO(iiif.whole_level(small, req, tile))) as img:
        assert img.size == (600, 300)
        px = np.asarray(img.convert("RGB"), np.int16)
    for (col, row), colour in colours.items():
        y, x = row * 254 + 100, col * 254 + 100
        if y < 300 and x < 600:
            assert np.abs(px[y, x] - colour).max() < 8
