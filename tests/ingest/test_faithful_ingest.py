"""Issue #19 through the whole upload path: a photograph is shown as a photograph (never as
H&E), and 16-bit / multi-channel fluorescence files are tiled channel by channel and show their
content (tiles against a numpy reference of the windowed source)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image
from sqlalchemy import select

from pathology_hub.models import Slide, SlideStatus
from tests.fixtures.uploads import tus_upload

ZH = {"Accept-Language": "zh-CN"}
EN = {"Accept-Language": "en"}


def _only_slide(db) -> Slide:
    db.expire_all()
    return db.scalars(select(Slide)).one()


def test_jpeg_named_svs_is_a_photograph_not_an_he_slide(client_for, db, tmp_path, demo_case_id):
    rng = np.random.default_rng(7)
    pixels = np.full((400, 600, 3), 240, np.uint8)
    pixels[100:300, 150:450] = rng.integers(120, 200, (200, 300, 3), dtype=np.uint8)
    path = tmp_path / "S1.svs"
    Image.fromarray(pixels).save(path, "JPEG", quality=90)
    tech = client_for("tech")
    assert tus_upload(tech, path, demo_case_id).status_code == 201  # stain defaults to "H&E"
    slide = _only_slide(db)
    assert slide.status is SlideStatus.READY, slide.reject_message
    assert slide.stain_category is None and slide.stain == ""
    row = tech.get(f"/api/v1/cases/{demo_case_id}/slides", headers=ZH).json["slides"][0]
    assert row["content"] == "photo" and row["content_label"] == "照片（非全切片扫描）"
    assert row["stain_display"] == ""
    assert "extension_mismatch" in [w["code"] for w in row["quality"]["warnings"]]
    page = tech.get(f"/cases/{demo_case_id}", headers=ZH).get_data(as_text=True)
    assert "照片（非全切片扫描）" in page and "文件扩展名与实际内容不符" in page


def _tile(client, dzi_url: str, level: int, col: int = 0, row: int = 0) -> np.ndarray:
    import io
    url = dzi_url.replace("slide.dzi", f"slide_files/{level}/{col}_{row}.jpeg")
    resp = client.get(url)
    assert resp.status_code == 200, (url, resp.status_code)
    return np.asarray(Image.open(io.BytesIO(resp.data)).convert("RGB")).astype(np.float64)


def _windowed(raw: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip(np.rint((raw.astype(np.float64) - lo) * 255.0 / (hi - lo)), 0, 255)


def _close(tile: np.ndarray, reference: np.ndarray, tol: float = 3.0) -> None:
    assert abs(tile.mean() - reference.mean()) < tol, (tile.mean(), reference.mean())
    for q in (5, 50, 95):
        assert abs(np.percentile(tile, q) - np.percentile(reference, q)) <= tol + 1, q


@pytest.mark.slow
def test_16bit_tiff_shows_its_content_windowed_not_white(client_for, db, tmp_path, demo_case_id):
    """The bug: a 16-bit fluorescence TIFF (640x480, LZW) was accepted and shown pure white."""
    yy, xx = np.mgrid[0:480, 0:640]
    raw = (300 + 3000 * np.exp(-((xx - 320) ** 2 + (yy - 240) ** 2) / (2 * 120.0 ** 2))).astype(np.uint16)
    path = tmp_path / "fluorescence.tif"
    tifffile.imwrite(path, raw, compression="lzw")
    tech = client_for("tech")
    assert tus_upload(tech, path, demo_case_id).status_code == 201
    slide = _only_slide(db)
    assert slide.status is SlideStatus.READY, slide.reject_message
    row = tech.get(f"/api/v1/cases/{demo_case_id}/slides", headers=ZH).json["slides"][0]
    assert row["content"] == "fluorescence" and row["content_label"]
    [channel] = row["channels"]
    lo, hi = np.percentile(raw, [0.1, 99.9])
    assert channel["window"] == [pytest.approx(lo, abs=0.01), pytest.approx(hi, abs=0.01)]
    reference = _windowed(raw, lo, hi)
    top = 10  # Deep Zoom level of full resolution for 640 px
    for dzi in (row["dzi_url"], channel["dzi_url"]):  # the composite (white channel) and the channel itself
        tile = _tile(tech, dzi, top)
        h, w = tile.shape[:2]
        assert tile.min() < 200  # not the pure white of the bug
        _close(tile[..., 0], reference[:h, :w])
        assert np.abs(tile[..., 0] - tile[..., 2]).max() <= 2  # grey


@pytest.mark.slow
def test_multichannel_ome_tiff_tiles_every_channel_under_its_name(client_for, db, tmp_path, demo_case_id):
    yy, xx = np.mgrid[0:300, 0:400]
    planes = np.stack([(200 + 60 * k + 2000 * ((xx // (40 + 20 * k) + yy // 50) % 2)).astype(np.uint16)
                       for k in range(4)])
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(path, planes, ome=True, photometric="minisblack", tile=(256, 256), metadata={
        "axes": "CYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5,
        "Channel": {"Name": ["DAPI", "FITC", "TRITC", "Cy5"]}})
    tech = client_for("tech")
    assert tus_upload(tech, path, demo_case_id).status_code == 201
    slide = _only_slide(db)
    assert slide.status is SlideStatus.READY, slide.reject_message
    row = tech.get(f"/api/v1/cases/{demo_case_id}/slides", headers=EN).json["slides"][0]
    assert row["mpp"] == pytest.approx(0.5) and row["content"] == "fluorescence"
    assert [(c["name"], c["colour"]) for c in row["channels"]] == [
        ("DAPI", "0000ff"), ("FITC", "00ff00"), ("TRITC", "ff0000"), ("Cy5", "ff00ff")]
    for k, channel in enumerate(row["channels"]):
        tile = _tile(tech, channel["dzi_url"], 9)
        h, w = tile.shape[:2]
        _close(tile[..., 1], _windowed(planes[k], *channel["window"])[:h, :w], tol=4.0)
    # a channel tile is served with the slide's authorisation only
    anonymous = client_for(None)
    url = row["channels"][0]["dzi_url"].split("?")[0].replace("slide.dzi", "slide_files/9/0_0.jpeg")
    assert anonymous.get(url).status_code in (401, 404)  # no token, no session: no tile


def _desc(**kw):
    from pathology_hub.slides import SlideDescription
    base = dict(kind="wsi", format="hamamatsu", vendor="hamamatsu", width=4000, height=3000, level_count=1,
                level_dimensions=((4000, 3000),), level_downsamples=(1.0,))
    return SlideDescription(**{**base, **kw})


def test_fluorescence_ndpi_and_photos_never_keep_the_default_he():
    from pathology_hub.domain.slides.processing import _honest_stain
    from pathology_hub.models import StainCategory

    fluo = Slide(stain="H&E", stain_category=None)
    _honest_stain(fluo, _desc(modality="fluorescence", properties={"hamamatsu.Fluorescence": "DAPI 2 (387)"}))
    assert (fluo.stain_category, fluo.stain) == (StainCategory.FLUORESCENCE, "DAPI 2 (387)")
    photo = Slide(stain="H&E", stain_category=None)
    _honest_stain(photo, _desc(kind="photo", format="jpeg"))
    assert (photo.stain_category, photo.stain) == (None, "")
    bright = Slide(stain="H&E", stain_category=None)
    _honest_stain(bright, _desc())
    assert bright.stain == "H&E"  # a bright-field scan keeps what the upload said
    chosen = Slide(stain="PAS", stain_category=StainCategory.SPECIAL)
    _honest_stain(chosen, _desc(kind="photo", format="jpeg"))
    assert (chosen.stain_category, chosen.stain) == (StainCategory.SPECIAL, "PAS")
