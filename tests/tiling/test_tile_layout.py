"""256/0 for new pyramids; pyramids stored with the former 254/1 layout keep being served as stored."""

from __future__ import annotations

import json

import numpy as np
import openslide
import pytest
from openslide.deepzoom import DeepZoomGenerator

from pathology_hub.tiling import PyramidReader, build_pyramid
from pathology_hub.tiling import source as source_module
from pathology_hub.tiling.layout import block_key, manifest_key

from .conftest import decode, psnr


def _build_old_layout(monkeypatch, slide, store, prefix, **kwargs):
    """What the release before 256/0 stored: the same pipeline with 254-pixel tiles and 1 px overlap."""
    with monkeypatch.context() as m:
        m.setattr(source_module, "TILE_SIZE", 254)
        m.setattr(source_module, "OVERLAP", 1)
        return build_pyramid(str(slide), store, prefix, workers=1, **kwargs)


def test_new_pyramid_is_256_without_overlap(synthetic_slide, store):
    build_pyramid(str(synthetic_slide), store, "pyramids/new/v1", workers=1)
    manifest = json.loads(store.get_bytes(manifest_key("pyramids/new/v1")))
    assert (manifest["dzi"]["tile_size"], manifest["dzi"]["overlap"]) == (256, 0)
    reader = PyramidReader(store, "pyramids/new/v1")
    g = reader.geometry
    # every full tile is exactly 256 x 256: one DZ tile = one IIIF tile = one DICOM frame
    assert decode(reader.tile(g.max_level, 0, 0)).shape[:2] == (256, 256)
    assert decode(reader.tile(g.max_level, 1, 1)).shape[:2] == (256, 256)


def test_pyramid_stored_with_254_and_overlap_is_still_served(monkeypatch, synthetic_slide, store):
    _build_old_layout(monkeypatch, synthetic_slide, store, "pyramids/old/v1")
    reader = PyramidReader(store, "pyramids/old/v1")  # read with today's code and constants
    g = reader.geometry
    assert (g.tile_size, g.overlap) == (254, 1)
    dz = DeepZoomGenerator(openslide.OpenSlide(str(synthetic_slide)), 254, 1, limit_bounds=True)
    assert reader.dzi_xml() == dz.get_dzi("jpeg")
    for level in (g.max_level, g.max_level - 2):
        cols, rows = g.level_tiles(level)
        for col, row in [(0, 0), (1, 1), (cols - 1, rows - 1)]:
            ours = decode(reader.tile(level, col, row))
            ref = np.asarray(dz.get_tile(level, (col, row)).convert("RGB"))
            assert ours.shape[:2] == ref.shape[:2] == g.tile_box(level, col, row)[3:1:-1]
            assert psnr(ours, ref) > 30


def test_resuming_a_build_started_with_the_old_layout_starts_over(monkeypatch, multiblock_slide, store):
    """Pack keys do not name the layout, so a half-built 254/1 pyramid must not be completed with 256/0 packs."""
    prefix = "pyramids/mixed/v1"
    _build_old_layout(monkeypatch, multiblock_slide, store, prefix)
    manifest = json.loads(store.get_bytes(manifest_key(prefix)))
    store.put_bytes(manifest_key(prefix, preview=True), json.dumps({**manifest, "complete": False}).encode())
    store.delete(manifest_key(prefix))
    old_pack = store.get_bytes(block_key(prefix, 0, 0))
    store.delete(block_key(prefix, 1, 0))  # killed before this pack
    result = build_pyramid(str(multiblock_slide), store, prefix, workers=1)
    assert result.packs_skipped == 0
    reader = PyramidReader(store, prefix)
    assert (reader.geometry.tile_size, reader.geometry.overlap) == (256, 0) and reader.complete
    assert store.get_bytes(block_key(prefix, 0, 0)) != old_pack
    fresh = build_pyramid(str(multiblock_slide), store, "pyramids/fresh/v1", workers=1)
    assert fresh.packs_written == result.packs_written
    for bx, by in [(0, 0), (1, 0), (1, 1)]:
        assert store.get_bytes(block_key(prefix, bx, by)) == store.get_bytes(block_key("pyramids/fresh/v1", bx, by))


@pytest.mark.parametrize("w,h", [(256 * 16, 300), (256 * 16 + 1, 257)])
def test_block_edges_without_overlap(tmp_path, store, w, h):
    """No halo: a block's region is exactly its tiles, and the tile at a block edge is whole."""
    from pathology_hub.slides.synthetic import write_synthetic_slide
    slide = write_synthetic_slide(tmp_path / "edge.svs", w, h, levels=1)
    build_pyramid(str(slide), store, "pyramids/edge/v1", workers=1)
    reader = PyramidReader(store, "pyramids/edge/v1")
    g = reader.geometry
    assert g.block_region(0, 0) == (0, 0, min(w, 4096), h)
    cols, rows = g.level_tiles(g.max_level)
    src = np.asarray(openslide.OpenSlide(str(slide)).read_region((0, 0), 0, (w, h)).convert("RGB"), np.float64)
    for col in {0, 15, cols - 1}:
        x, y, tw, th = g.tile_box(g.max_level, col, 0)
        assert psnr(decode(reader.tile(g.max_level, col, 0)), src[y:y + th, x:x + tw]) > 30
