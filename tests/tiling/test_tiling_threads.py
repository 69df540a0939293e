"""A slide tiled in one process uses both cores: tile decoding, colour conversion and encoding on
threads, its blocks rendered while the coarse levels are made, the thumbnail taken from the
coarse levels' own read. None of it may change a byte of what is stored."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from pathology_hub.slides.readers import parallel
from pathology_hub.slides.synthetic import write_synthetic_slide
from pathology_hub.tiling import TilingError, build_pyramid, pipeline, render
from pathology_hub.tiling.source import SlideSource

from .conftest import corrupt_tile


def test_thread_map_keeps_order_raises_and_runs_nested_maps_inline():
    assert parallel.thread_map(lambda x: x * x, range(50)) == [x * x for x in range(50)]

    def boom(x: int) -> int:
        if x == 7:
            raise ValueError("tile 7")
        return x
    with pytest.raises(ValueError, match="tile 7"):
        parallel.thread_map(boom, range(20))

    def nested(x: int) -> list[str]:
        # A job that maps again runs its inner map on its own thread: waiting for the pool's
        # other threads from inside the pool could deadlock it.
        return parallel.thread_map(lambda _: threading.current_thread().name, range(3))
    for names in parallel.thread_map(nested, range(4)):
        assert len(set(names)) == 1 and names[0].startswith("decode")


def test_colour_conversion_in_strips_equals_one_transform(shared_slides):
    """The TCGA slide's ICC profile (not sRGB) converted on threads, strip by strip, gives the
    same bytes as one transform of the whole array."""
    from PIL import Image
    source = SlideSource(shared_slides / "aperio-jp2k-tcga-cr-7395.svs")
    try:
        assert source.needs_srgb
        pixels = np.random.default_rng(3).integers(0, 256, (2100, 1500, 3), dtype=np.uint8)
        whole = np.asarray(source.to_srgb(Image.fromarray(pixels)))
        assert not np.array_equal(whole, pixels)  # the transform does change colours
        assert np.array_equal(source.srgb_pixels(pixels), whole)
    finally:
        source.close()


def test_identity_check_is_remembered_per_profile(shared_slides, monkeypatch):
    """A scanner's profile is checked once per process; another profile gets its own answer."""
    from pathology_hub.tiling import source as source_module

    monkeypatch.setattr(source_module, "_IDENTITY", {})
    answers = []
    for name in ["dicom-boxes_0.dcm", "aperio-jp2k-tcga-cr-7395.svs", "dicom-boxes_0.dcm"]:
        slide = SlideSource(shared_slides / name)
        try:
            answers.append(slide.icc_is_identity())
        finally:
            slide.close()
    assert answers == [True, False, True]  # embedded sRGB, the TCGA scanner's profile, sRGB again
    assert sorted(source_module._IDENTITY.values()) == [False, True]


def test_thumbnail_reuses_the_coarse_levels_read_with_the_same_pixels(shared_slides):
    path = shared_slides / "aperio-jp2k-tcga-cr-7395.svs"
    fresh = SlideSource(path)
    reused = SlideSource(path)
    try:
        expected = np.asarray(fresh.thumbnail())
        levels = [lv for lv in reused.geometry.coarse_levels]
        list(render.render_scanner_coarse(reused, levels, 80))
        assert reused._thumbnail_read is not None  # level 1 was read whole for the coarse levels
        calls = []
        real = reused.slide.read_region
        reused.slide.read_region = lambda *a, **k: calls.append(a) or real(*a, **k)
        assert np.array_equal(np.asarray(reused.thumbnail()), expected)
        assert calls == []  # no second read of the level
        assert reused._thumbnail_read is None  # and the pixels are not kept
    finally:
        fresh.close()
        reused.close()


def test_blocks_rendered_ahead_store_the_same_bytes(tmp_path, store, monkeypatch):
    """A two-level slide in one process: its blocks start on a thread before the coarse levels.
    Every stored object equals the build that renders them afterwards."""
    path = write_synthetic_slide(tmp_path / "ahead.svs", 3000, 2200, levels=2, seed=5)
    started = []
    real = pipeline._Build._render_ahead
    monkeypatch.setattr(pipeline._Build, "_render_ahead", lambda self, todo: started.append(1) or real(self, todo))
    build_pyramid(str(path), store, "p/ahead", workers=2)
    assert started
    monkeypatch.setattr(pipeline._Build, "_render_ahead", lambda self, todo: None)
    build_pyramid(str(path), store, "p/after", workers=2)
    ahead = {i.key.split("/", 2)[2] for i in store.list("p/ahead/")}
    after = {i.key.split("/", 2)[2] for i in store.list("p/after/")}
    assert ahead == after and any(k.startswith("packs/b") for k in ahead)
    for key in ahead - {"manifest.json"}:
        assert store.get_bytes(f"p/ahead/{key}") == store.get_bytes(f"p/after/{key}"), key


def test_corrupt_tile_in_a_block_rendered_ahead_is_a_tiling_error(tmp_path, store):
    path = write_synthetic_slide(tmp_path / "bad.svs", 3000, 2200, levels=2, tissue_fraction=1.0)
    corrupt_tile(path, 9, seed=2)
    with pytest.raises(TilingError) as err:
        build_pyramid(str(path), store, "p/bad", workers=2)
    assert "corrupt" in err.value.reason or "cannot" in err.value.reason
    assert not store.exists("p/bad/manifest.json")
