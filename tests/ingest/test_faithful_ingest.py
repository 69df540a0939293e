"""Issue #19 through the whole upload path: a photograph is shown as a photograph (never as
H&E), and a file the viewer would show wrongly is refused with what was found, in zh and en."""

from __future__ import annotations

import numpy as np
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


def test_16bit_tiff_is_refused_with_what_was_found_in_both_languages(client_for, db, tmp_path, demo_case_id):
    path = tmp_path / "fluorescence.tif"
    tifffile.imwrite(path, (np.arange(480 * 640) % 4000).astype(np.uint16).reshape(480, 640), compression="lzw")
    tech = client_for("tech")
    assert tus_upload(tech, path, demo_case_id).status_code == 201
    slide = _only_slide(db)
    assert slide.status is SlideStatus.REJECTED and slide.reject_code == "unsupported_pixels"
    zh = tech.get(f"/api/v1/cases/{demo_case_id}/slides", headers=ZH).json["slides"][0]
    en = tech.get(f"/api/v1/cases/{demo_case_id}/slides", headers=EN).json["slides"][0]
    assert "每个采样为 16 位" in zh["reject_detail"] and "8 位 RGB" in zh["reject_detail"]
    assert "16 bits per sample" in en["reject_detail"] and "8-bit RGB TIFF or SVS" in en["reject_detail"]
    page = tech.get(f"/cases/{demo_case_id}", headers=ZH).get_data(as_text=True)
    assert "每个采样为 16 位" in page


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
