"""Quality warnings measured on real thumbnails and on controlled degradations."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import openslide
import pytest
from PIL import Image, ImageFilter

from pathology_hub.slides import SlideDescription, assess_quality
from pathology_hub.slides.quality import DEFAULT_MIN_FOCUS_SCORE


@functools.lru_cache(maxsize=None)
def _thumb(slides_dir: Path, name: str) -> Image.Image:
    """Cached: JPEG 2000 decoding is slow and the thumbnail is never modified."""
    with openslide.OpenSlide(slides_dir / name) as slide:
        return slide.get_thumbnail((512, 512))


def _description(mpp: float | None = 0.5, background: str | None = None) -> SlideDescription:
    return SlideDescription(
        kind="wsi", format="aperio", vendor="aperio", width=4000, height=3000, level_count=1,
        level_dimensions=((4000, 3000),), level_downsamples=(1.0,), mpp_x=mpp, mpp_y=mpp,
        background_color=background,
    )


@pytest.mark.parametrize(
    "name", ["aperio-jpeg-CMU-1-Small-Region.svs", "aperio-jp2k-tcga-cr-7395.svs", "hamamatsu-fluorescence-DAPI.ndpi"]
)
def test_real_scans_are_sharp_and_have_tissue(slides_dir: Path, name: str) -> None:
    report = assess_quality(_thumb(slides_dir, name), _description())
    assert report.codes == []
    assert report.focus_score is not None and report.focus_score > 10 * DEFAULT_MIN_FOCUS_SCORE
    assert report.tissue_fraction > 0.2


@pytest.mark.parametrize(
    "name", ["aperio-jpeg-CMU-1-Small-Region.svs", "aperio-jp2k-tcga-cr-7395.svs", "hamamatsu-fluorescence-DAPI.ndpi"]
)
def test_blurred_scans_are_flagged(slides_dir: Path, name: str) -> None:
    blurred = _thumb(slides_dir, name).filter(ImageFilter.GaussianBlur(2))
    report = assess_quality(blurred, _description())
    assert report.codes == ["blurry"]
    warning = report.warnings[0]
    assert warning.values["focus_score"] < DEFAULT_MIN_FOCUS_SCORE
    assert "out of focus" in warning.message


def test_fluorescence_black_background_is_recognised(slides_dir: Path) -> None:
    report = assess_quality(_thumb(slides_dir, "hamamatsu-fluorescence-DAPI.ndpi"), _description())
    assert report.dark_background is True
    assert "low_tissue" not in report.codes


def test_blank_glass_is_low_tissue() -> None:
    glass = Image.fromarray(np.full((400, 400, 3), 242, np.uint8))
    report = assess_quality(glass, _description())
    assert "low_tissue" in report.codes and report.tissue_fraction == 0.0
    assert report.focus_score is None  # no tissue to measure


def test_blank_fluorescence_slide_is_low_tissue() -> None:
    rng = np.random.default_rng(0)
    dark = Image.fromarray(rng.integers(0, 6, (400, 400, 3), dtype=np.uint8))
    report = assess_quality(dark, _description(background="000000"))
    assert report.dark_background is True and "low_tissue" in report.codes


def test_declared_background_colour_is_used() -> None:
    """Grey glass declared by the scanner: grey pixels are not tissue."""
    grey = np.full((200, 200, 3), 200, np.uint8)
    grey[50:150, 50:150] = (120, 40, 110)
    report = assess_quality(Image.fromarray(grey), _description(background="C8C8C8"))
    assert report.tissue_fraction == pytest.approx(0.25, abs=0.01)


def test_missing_mpp_warning() -> None:
    rgb = np.full((100, 100, 3), 240, np.uint8)
    rgb[20:80, 20:80] = (150, 60, 140)
    report = assess_quality(Image.fromarray(rgb), _description(mpp=None))
    assert "missing_mpp" in report.codes


def test_report_round_trips() -> None:
    from pathology_hub.slides import QualityReport

    rgb = np.full((100, 100, 3), 240, np.uint8)
    report = assess_quality(Image.fromarray(rgb), _description(mpp=None))
    assert QualityReport.from_dict(report.to_dict()) == report
