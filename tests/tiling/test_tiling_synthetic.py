"""The synthetic slide generator produces files OpenSlide treats as real Aperio slides."""

from __future__ import annotations

import numpy as np
import openslide

from pathology_hub.slides.synthetic import write_synthetic_slide


def test_synthetic_opens_as_aperio(tmp_path):
    path = write_synthetic_slide(tmp_path / "s.svs", 5000, 4200, mpp=0.25, tissue_fraction=0.45)
    slide = openslide.OpenSlide(str(path))
    assert slide.properties["openslide.vendor"] == "aperio"
    assert slide.dimensions == (5000, 4200)
    assert slide.level_dimensions == ((5000, 4200), (1250, 1050))
    assert float(slide.properties["openslide.mpp-x"]) == 0.25
    assert slide.properties["aperio.AppMag"] == "40"
    assert {"thumbnail", "label"} <= set(slide.associated_images)
    # Tissue fraction roughly as asked, tissue pinkish-purple, glass white.
    px = np.asarray(slide.read_region((0, 0), 1, slide.level_dimensions[1]).convert("RGB")).astype(int)
    tissue = (px.min(axis=2) < 235)
    assert 0.3 < tissue.mean() < 0.6
    mean = px[tissue].mean(axis=0)
    assert mean[0] > mean[1] and mean[2] > mean[1]


def test_levels_and_seed_are_honoured(tmp_path):
    a = write_synthetic_slide(tmp_path / "a.svs", 1000, 800, levels=3, seed=7)
    b = write_synthetic_slide(tmp_path / "b.svs", 1000, 800, levels=3, seed=7)
    assert a.read_bytes() == b.read_bytes()
    assert openslide.OpenSlide(str(a)).level_count == 3
