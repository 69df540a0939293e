"""A microscope-camera photo (plain JPEG) becomes a viewable slide like any scanner file."""

from __future__ import annotations

import numpy as np
from PIL import Image
from sqlalchemy import select

from pathology_hub.models import Slide, SlideStatus
from tests.fixtures.uploads import tus_upload


def test_jpeg_photo_is_accepted_and_tiled(client_for, db, tmp_path, demo_case_id):
    rng = np.random.default_rng(4)
    pixels = np.full((900, 1300, 3), 245, np.uint8)
    pixels[200:700, 300:1000] = rng.integers(120, 200, (500, 700, 3), dtype=np.uint8)
    photo = tmp_path / "camera-photo.jpg"
    Image.fromarray(pixels).save(photo, quality=92)
    tech = client_for("tech")
    assert tus_upload(tech, photo, demo_case_id).status_code == 201
    db.expire_all()
    slide = db.scalars(select(Slide)).one()
    assert slide.status is SlideStatus.READY, slide.reject_message
    info = tech.get(f"/api/v1/slides/{slide.id}").json
    assert (info["width"], info["height"], info["format"]) == (1300, 900, "jpeg")
    dzi = tech.get(info["dzi_url"])
    assert b'Width="1300"' in dzi.data and b'Height="900"' in dzi.data
    tile = tech.get(info["dzi_url"].replace("slide.dzi", "slide_files/11/2_1.jpeg"))
    assert tile.status_code == 200 and tile.data[:2] == b"\xff\xd8"
