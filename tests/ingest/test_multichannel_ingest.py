"""Issue #19: multiplex QPTIFF and 16-bit fluorescence TIFFs through the real path.

Upload (tus) -> sandboxed probe -> tiling job (composite and one 8-bit pyramid per channel) ->
slide API, channel tiles and the case page. The files are the kinds a new user brought: a Vectra
QPTIFF whose first channel alone was almost black (mean 1.4/255) with its MPP "missing", and a
16-bit fluorescence TIFF shown pure white.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile
from PIL import Image
from sqlalchemy import select

from pathology_hub.models import Slide, SlideStatus
from tests.fixtures.uploads import tus_upload
from tests.slides.test_slides_faithful import write_qptiff

pytestmark = pytest.mark.slow  # probe + tiling of 7 pyramids: a few seconds

EN = {"Accept-Language": "en"}
ZH = {"Accept-Language": "zh-CN"}


def _ready(db) -> Slide:
    db.expire_all()
    slide = db.scalars(select(Slide)).one()
    assert slide.status is SlideStatus.READY, (slide.status, slide.reject_code, slide.reject_message)
    return slide


def _grey(client, dzi_url: str, level: int) -> np.ndarray:
    resp = client.get(dzi_url.replace("slide.dzi", f"slide_files/{level}/0_0.jpeg"))
    assert resp.status_code == 200 and resp.data[:2] == b"\xff\xd8"
    img = Image.open(io.BytesIO(resp.data))
    assert img.mode == "L", "a channel is stored as one-component (grey) JPEG"
    return np.asarray(img, float)


def _windowed(plane: np.ndarray, window: list[float]) -> np.ndarray:
    lo, hi = window
    return np.clip(np.rint((plane.astype(np.float64) - lo) * 255.0 / (hi - lo)), 0, 255)


def _matches(tile: np.ndarray, ref: np.ndarray) -> None:
    """The served 8-bit tile (the top-left 256 px of full resolution) is the source plane through the
    stored window, within JPEG error."""
    ref = ref[:tile.shape[0], :tile.shape[1]]
    assert tile.shape == ref.shape == (256, 256)
    assert abs(tile.mean() - ref.mean()) < 3, (tile.mean(), ref.mean())
    for q in (5, 50, 95):
        assert abs(np.percentile(tile, q) - np.percentile(ref, q)) < 12, q


def test_multiplex_qptiff_keeps_every_channel_under_its_name(client_for, db, tmp_path, demo_case_id):
    names = ["DAPI", "Opal 520", "Opal 570", "Opal 620", "Opal 690", "Autofluorescence"]
    planes = write_qptiff(tmp_path / "vectra.qptiff", names, {"Opal 620": "255,128,0"}, size=(300, 400),
                          dtype=np.uint16)
    tech = client_for("tech")
    assert tus_upload(tech, tmp_path / "vectra.qptiff", demo_case_id).status_code == 201
    slide = _ready(db)
    info = tech.get(f"/api/v1/slides/{slide.id}").json
    assert info["stain_category"] == "fluorescence"
    assert info["mpp"] == pytest.approx(0.4965)  # from the QPTIFF XML ("missing" before)
    channels = info["channels"]
    assert [c["name"] for c in channels] == names
    assert [c["colour"] for c in channels] == ["0000ff", "00ff00", "ff0000", "ff8000", "ff00ff", "00ffff"]
    for ch, plane in zip(channels, planes):
        lo, hi = np.percentile(plane, [0.1, 99.9])
        assert ch["window"] == [pytest.approx(lo, abs=0.01), pytest.approx(hi, abs=0.01)]
        # full resolution of this 400 x 300 slide is Deep Zoom level 9
        tile = _grey(tech, ch["dzi_url"], 9)
        _matches(tile, _windowed(plane, ch["window"]))
        assert 5 < tile.mean() < 250, "neither black nor white"
    composite = tech.get(info["dzi_url"].replace("slide.dzi", "slide_files/9/0_0.jpeg"))
    assert composite.status_code == 200
    rgb = np.asarray(Image.open(io.BytesIO(composite.data)).convert("RGB"), float)
    assert rgb.mean() > 40, "the composite shows every channel, not the first one almost black"
    for headers, word in ((EN, "Fluorescence"), (ZH, "荧光")):
        page = tech.get(f"/cases/{demo_case_id}", headers=headers).get_data(as_text=True)
        assert word in page, word


def test_16_bit_fluorescence_tiff_shows_its_content(client_for, db, tmp_path, demo_case_id):
    rng = np.random.default_rng(5)
    plane = (rng.gamma(2.0, 300.0, (480, 640)) + 200).astype(np.uint16)  # dim 16-bit signal
    plane[100:300, 200:500] += 6000  # a bright cell cluster
    path = tmp_path / "fitc-16bit.tif"
    tifffile.imwrite(path, plane, compression="lzw", photometric="minisblack")
    tech = client_for("tech")
    assert tus_upload(tech, path, demo_case_id).status_code == 201
    slide = _ready(db)
    info = tech.get(f"/api/v1/slides/{slide.id}").json
    assert info["stain_category"] == "fluorescence"
    assert info["mpp"] is None  # no trustworthy pixel size in the file
    (channel,) = info["channels"]
    lo, hi = np.percentile(plane, [0.1, 99.9])
    assert channel["window"] == [pytest.approx(lo, abs=0.01), pytest.approx(hi, abs=0.01)]
    tile = _grey(tech, channel["dzi_url"], 10)  # 640 x 480: full resolution is level 10
    _matches(tile, _windowed(plane, channel["window"]))
    assert tile.mean() < 200 and tile.std() > 20, "its content, not pure white"
