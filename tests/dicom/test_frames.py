"""Frames from stored tiles: byte-for-byte for 256-px tiles without overlap, cropped/padded otherwise."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from pathology_hub.domain.dicom import frames
from pathology_hub.tiling.geometry import Geometry


class _Tiles:
    """Tiles cut from one known picture the way the tiler cuts them (overlap included)."""

    def __init__(self, geometry: Geometry, picture: Image.Image):
        self.geometry = geometry
        self.picture = picture

    def tile(self, level, col, row) -> bytes:
        x, y, w, h = self.geometry.tile_box(level, col, row)
        out = io.BytesIO()
        self.picture.crop((x, y, x + w, y + h)).save(out, "JPEG", quality=95)
        return out.getvalue()


def _picture(w: int, h: int) -> Image.Image:
    rng = np.random.default_rng(3)
    base = rng.integers(40, 220, (h // 40 + 2, w // 40 + 2, 3), dtype=np.uint8)
    return Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC)  # tissue-like smooth colour


def test_full_256_tiles_pass_through_and_edges_are_padded():
    g = Geometry(600, 300, 256, 0)
    src = _Tiles(g, _picture(600, 300))
    top = g.max_level
    assert frames.frame_count(g, top) == 3 * 2
    assert frames.read_frame(src, top, 1) == src.tile(top, 0, 0)  # identical bytes, not re-encoded
    edge = Image.open(io.BytesIO(frames.read_frame(src, top, 3)))  # col 2: 88 px wide
    assert edge.size == (256, 256)
    px = np.asarray(edge.convert("RGB"), dtype=int)
    assert px[:, 100:].min() > 240  # padding is white
    want = np.asarray(src.picture.crop((512, 0, 600, 256)), dtype=int)
    assert np.abs(px[:, :88] - want).mean() < 4


def test_overlap_tiles_are_cropped_to_their_own_cells():
    g = Geometry(600, 300, 254, 1)
    pic = _picture(600, 300)
    src = _Tiles(g, pic)
    top = g.max_level
    frame = np.asarray(Image.open(io.BytesIO(frames.read_frame(src, top, 2))).convert("RGB"), dtype=int)
    want = np.asarray(pic.crop((254, 0, 508, 254)), dtype=int)  # the cell, not the overlapping border
    assert frame.shape == (254, 254, 3)
    assert np.abs(frame - want).mean() < 4
    shifted = np.asarray(pic.crop((253, 0, 507, 254)), dtype=int)
    assert np.abs(frame - shifted).mean() > 1.5 * np.abs(frame - want).mean()  # a 1-px shift shows


def test_frame_numbers_outside_the_level_are_refused():
    g = Geometry(600, 300, 256, 0)
    import pytest
    with pytest.raises(IndexError):
        frames.frame_address(g, g.max_level, 7)
    with pytest.raises(IndexError):
        frames.frame_address(g, g.max_level, 0)


def test_frame_media_type_negotiation():
    from pathology_hub.domain.dicom import multipart
    assert multipart.frame_part_type(None) == "image/jpeg"
    assert multipart.frame_part_type('multipart/related; type="image/jpeg"') == "image/jpeg"
    assert multipart.frame_part_type(
        'multipart/related; type="image/jpeg"; transfer-syntax=1.2.840.10008.1.2.4.50') == "image/jpeg"
    # "as stored", what dicom-microscopy-viewer asks for: the JPEG bytes as octet-stream parts
    assert multipart.frame_part_type(
        'multipart/related; type="application/octet-stream"; transfer-syntax=*') == "application/octet-stream"
    # uncompressed pixels are not on offer
    assert multipart.frame_part_type('multipart/related; type="application/octet-stream"') is None
    assert multipart.frame_part_type("image/png") is None
