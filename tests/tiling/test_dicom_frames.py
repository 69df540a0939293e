"""DICOM WSI frames read straight from the series' files: the scanner levels decode to exactly what
OpenSlide reads, full-resolution tiles that are whole frames are stored as the scanner's own JPEG,
and a tile rendered on demand is byte for byte the one the pipeline stored."""

from __future__ import annotations

import io

import imagecodecs
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import generate_frames

from pathology_hub.tiling import PyramidReader, build_pyramid, direct_tiles, render_tile
from pathology_hub.tiling.dicom_frames import DicomFrames, plain_ycbcr_jpeg
from pathology_hub.tiling.source import SlideSource

from .conftest import decode


@pytest.fixture(scope="module")
def series(shared_slides, tmp_path_factory):
    """4,400 x 2,600 with a 4x level (bench/tiling.py's writer, from OpenSlide's DICOM fixture)."""
    from bench.tiling import write_dicom_wsi
    return write_dicom_wsi(tmp_path_factory.mktemp("dcm") / "series", 4400, 2600)


def test_scanner_levels_decoded_directly_equal_openslide(series):
    source = SlideSource(str(series))
    try:
        assert source.slide.level_count == 2
        level = direct_tiles._direct_level(source, 1)
        assert isinstance(level, DicomFrames) and (level.width, level.height) == (1100, 650)
        # whole, a window, and a window running past the level's edge (background there, as OpenSlide)
        for box in [(0, 0, 1100, 650), (37, 251, 700, 649), (1000, 600, 1104, 656)]:
            assert np.array_equal(direct_tiles.read_level(source, 1, 2, *box), source.read_level(1, 2, *box)), box
    finally:
        source.close()


def test_whole_frames_are_stored_unchanged_and_on_demand_tiles_match(series, store):
    frames = list(generate_frames(pydicom.dcmread(str(series)).PixelData))
    build_pyramid(str(series), store, "pyramids/dcm/v1", workers=1)
    reader = PyramidReader(store, "pyramids/dcm/v1")
    g = reader.geometry
    cols = -(-4400 // 256)
    native = 0
    cols, rows = g.level_tiles(g.max_level)
    for row in range(rows):
        for col in range(cols):
            tile = reader.tile(g.max_level, col, row)
            if decode(tile).std() == 0:
                continue  # blank glass: the shared blank tile
            if (col + 1) * 256 <= 4400 and (row + 1) * 256 <= 2600:
                assert tile == frames[row * cols + col], (col, row)
                native += 1
    assert native > 20
    for level in range(g.max_level - 3, g.max_level + 1):
        cols, rows = g.level_tiles(level)
        for row in range(rows):
            for col in range(cols):
                assert render_tile(str(series), level, col, row) == reader.tile(level, col, row), (level, col, row)


def test_frames_cut_by_the_image_edge_are_re_encoded(tmp_path, store):
    """A frame at the right or bottom edge is padded to the full frame size; its tile is not."""
    from pathology_hub.slides.synthetic_formats import write_dicom_wsi
    arr = np.random.default_rng(3).integers(0, 200, (300, 600, 3), dtype=np.uint8)
    (tmp_path / "edge").mkdir()
    path = write_dicom_wsi(tmp_path / "edge" / "level0.dcm", arr, quality=90)
    frames = list(generate_frames(pydicom.dcmread(str(path)).PixelData))
    build_pyramid(str(path), store, "pyramids/edge/v1", workers=1)
    reader = PyramidReader(store, "pyramids/edge/v1")
    g = reader.geometry
    assert reader.tile(g.max_level, 0, 0) == frames[0] and reader.tile(g.max_level, 1, 0) == frames[1]
    for col, row in [(2, 0), (0, 1), (2, 1)]:
        tile = reader.tile(g.max_level, col, row)
        _, _, w, h = g.tile_box(g.max_level, col, row)
        assert tile != frames[row * 3 + col] and decode(tile).shape[:2] == (h, w)
        assert render_tile(str(path), g.max_level, col, row) == tile


def test_no_frame_is_stored_as_is_when_colours_must_be_converted(series, monkeypatch):
    source = SlideSource(str(series))
    try:
        assert direct_tiles.native_jpeg(source, source.geometry.max_level, 3, 3) is not None
        monkeypatch.setattr(SlideSource, "needs_srgb", property(lambda self: True))
        assert direct_tiles.native_jpeg(source, source.geometry.max_level, 3, 3) is None
    finally:
        source.close()


def _pil_jpeg(arr: np.ndarray, **options) -> bytes:
    out = io.BytesIO()
    Image.fromarray(arr).save(out, "JPEG", **options)
    return out.getvalue()


def test_only_plain_ycbcr_baseline_frames_count_as_browser_safe():
    arr = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    plain = bytes(imagecodecs.jpeg8_encode(arr, level=85))
    assert plain_ycbcr_jpeg(plain, 256)
    assert plain_ycbcr_jpeg(_pil_jpeg(arr, quality=85), 256)
    assert not plain_ycbcr_jpeg(plain, 512)  # another size
    assert not plain_ycbcr_jpeg(bytes(imagecodecs.jpeg8_encode(arr[:200], level=85)), 256)
    assert not plain_ycbcr_jpeg(_pil_jpeg(arr, progressive=True), 256)
    assert not plain_ycbcr_jpeg(_pil_jpeg(arr, icc_profile=b"\0" * 200), 256)
    adobe = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"  # APP14, transform 0: RGB
    assert not plain_ycbcr_jpeg(plain[:2] + adobe + plain[2:], 256)
    sof = plain.index(b"\xff\xc0")
    rgb_ids = bytearray(plain)
    for k, ident in enumerate(b"RGB"):  # components named R, G, B: decoders read them as RGB
        rgb_ids[sof + 10 + 3 * k] = ident
    assert not plain_ycbcr_jpeg(bytes(rgb_ids), 256)
    assert not plain_ycbcr_jpeg(b"not a jpeg", 256) and not plain_ycbcr_jpeg(plain[:40], 256)
