"""Issue #19: a KFBio .kfb and a DICOM WSI without ImageType become viewable slides end to end.

Upload (tus) -> sandboxed probe -> tiling through the reader interface -> DZI and tiles served,
with the tiles' pixels compared to the source the files were written from.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from pathology_hub.models import Slide, SlideStatus
from pathology_hub.slides.synthetic_formats import pyramid, write_dicom_wsi, write_kfb
from tests.fixtures.uploads import tus_upload

pytestmark = pytest.mark.slow  # probe + tiling child processes: ~5 s each


def _source(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(11)
    img = np.full((h, w, 3), 240, np.uint8)
    block = rng.integers(100, 200, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
    img[h // 4:h // 4 + h // 2, w // 4:w // 4 + w // 2] = np.kron(block, np.ones((8, 8, 1), np.uint8))[:h // 2, :w // 2]
    return img


def _close(tile: np.ndarray, ref: np.ndarray) -> None:
    """Mean and percentiles per channel as the source's, within the served JPEG's error
    (random 8-px colour blocks are the worst case for chroma subsampling, hence 12 per pixel)."""
    assert tile.shape == ref.shape
    for c in range(3):
        assert abs(tile[..., c].mean() - ref[..., c].mean()) < 2
        for q in (5, 50, 95):
            assert abs(np.percentile(tile[..., c], q) - np.percentile(ref[..., c], q)) < 8
    assert np.abs(tile - ref).mean() < 12


def _ready(db) -> Slide:
    db.expire_all()
    slide = db.scalars(select(Slide)).one()
    assert slide.status is SlideStatus.READY, (slide.status, slide.reject_code, slide.reject_message)
    return slide


def _tile(client, info, level: int, col: int, row: int) -> np.ndarray:
    resp = client.get(info["dzi_url"].replace("slide.dzi", f"slide_files/{level}/{col}_{row}.jpeg"))
    assert resp.status_code == 200 and resp.data[:2] == b"\xff\xd8"
    return np.asarray(Image.open(io.BytesIO(resp.data)).convert("RGB"), float)


def test_kfb_upload_becomes_a_viewable_slide(client_for, db, tmp_path, demo_case_id):
    src = _source(700, 1000)
    path = write_kfb(tmp_path / "scan.kfb", pyramid(src, 3), mpp=0.2428, magnification=40)
    tech = client_for("tech")
    assert tus_upload(tech, path, demo_case_id).status_code == 201
    slide = _ready(db)
    info = tech.get(f"/api/v1/slides/{slide.id}").json
    assert (info["width"], info["height"], info["format"]) == (1000, 700, "kfbio")
    assert abs(info["mpp"] - 0.2428) < 1e-4
    dzi = tech.get(info["dzi_url"])
    assert b'Width="1000"' in dzi.data and b'Height="700"' in dzi.data
    top = 10  # 1000 px wide -> Deep Zoom levels 0..10; level 10 is full resolution
    size = int(re.search(rb'TileSize="(\d+)"', dzi.data).group(1))
    overlap = int(re.search(rb'Overlap="(\d+)"', dzi.data).group(1))
    tile = _tile(tech, info, top, 1, 1)  # tile (1, 1) starts one tile in, less its overlap
    origin = size - overlap
    ref = src[origin:origin + tile.shape[0], origin:origin + tile.shape[1]].astype(float)
    _close(tile, ref)
    assert tech.get(f"/api/v1/slides/{slide.id}/thumbnail.jpg").data[:2] == b"\xff\xd8"


def test_dicom_wsi_without_image_type_upload_becomes_a_viewable_slide(client_for, db, tmp_path, demo_case_id):
    src = _source(600, 800)
    path = write_dicom_wsi(tmp_path / "noflavor.dcm", src, mpp=0.5, image_type=False)
    tech = client_for("tech")
    assert tus_upload(tech, path, demo_case_id).status_code == 201
    slide = _ready(db)
    info = tech.get(f"/api/v1/slides/{slide.id}").json
    assert (info["width"], info["height"], info["format"]) == (800, 600, "dicom")
    tile = _tile(tech, info, 10, 0, 0)
    ref = src[:tile.shape[0], :tile.shape[1]].astype(float)
    _close(tile, ref)
