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

    monkeypatch.setattr(source_module, "_PROFILES", {})
    answers = []
    for name in ["dicom-boxes_0.dcm", "aperio-jp2k-tcga-cr-7395.svs", "dicom-boxes_0.dcm"]:
        slide = SlideSource(shared_slides / name)
        try:
            answers.append(slide.icc_is_identity())
        finally:
            slide.close()
    assert answers == [True, False, True]  # embedded sRGB, the TCGA scanner's profile, sRGB again
    assert sorted(p.identity for p in source_module._PROFILES.values()) == [False, True]


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


def _srgb_with_gamma_step(step: int):
    """The built-in sRGB profile with its tone curves' gamma moved by ``step`` / 65536."""
    import io
    import struct

    from PIL import ImageCms
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    count = struct.unpack(">I", data[128:132])[0]
    tags = {bytes(data[132 + 12 * i:136 + 12 * i]): struct.unpack(">II", data[136 + 12 * i:144 + 12 * i])
            for i in range(count)}
    offset = tags[b"rTRC"][0]
    assert data[offset:offset + 4] == b"para"
    gamma = struct.unpack(">i", data[offset + 12:offset + 16])[0]
    data[offset + 12:offset + 16] = struct.pack(">i", gamma + step)
    return ImageCms.ImageCmsProfile(io.BytesIO(bytes(data)))


def test_identity_check_sees_a_profile_that_changes_few_colours(tmp_path, monkeypatch):
    """A tone curve a hair off sRGB changes about 2 % of all 16.7 M colours by one level: the
    sampled check (ramps and lattice, not the whole cube) must still see it; the same profile
    unchanged maps every colour to itself."""
    from PIL import Image, ImageCms

    from pathology_hub.tiling import source as source_module

    monkeypatch.setattr(source_module, "_PROFILES", {})
    path = write_synthetic_slide(tmp_path / "s.svs", 300, 200, levels=1)
    cube = np.stack(np.meshgrid(*[np.arange(256, dtype=np.uint8)] * 3, indexing="ij"), axis=-1).reshape(4096, 4096, 3)
    for step, identity in [(0, True), (780, False)]:
        profile = _srgb_with_gamma_step(step)
        transform = ImageCms.buildTransform(profile, ImageCms.createProfile("sRGB"), "RGB", "RGB")
        changed = int((np.asarray(ImageCms.applyTransform(Image.fromarray(cube), transform)) != cube).any(-1).sum())
        assert (changed == 0) is identity
        assert identity or changed < 0.05 * cube.shape[0] * cube.shape[1]  # a slight change, not a wholesale one
        source = SlideSource(path)
        try:
            source._profile = source_module._Profile(transform)
            assert source.icc_is_identity() is identity
        finally:
            source.close()


def test_srgb_transform_is_built_once_per_profile(shared_slides, monkeypatch):
    """Every slide of a scanner carries the same profile: its transform is built once per process."""
    from PIL import Image, ImageCms

    from pathology_hub.tiling import source as source_module

    monkeypatch.setattr(source_module, "_PROFILES", {})
    built = []
    real = ImageCms.buildTransform
    monkeypatch.setattr(ImageCms, "buildTransform", lambda *a, **k: built.append(a) or real(*a, **k))
    slides = [SlideSource(shared_slides / name) for name in
              ["aperio-jp2k-tcga-cr-7395.svs", "aperio-jp2k-tcga-cr-7395.svs", "dicom-boxes_0.dcm"]]
    try:
        assert len(built) == 2
        assert slides[0]._profile.transform is slides[1]._profile.transform is not slides[2]._profile.transform
        pixels = np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        fresh = real(slides[0].slide.color_profile, ImageCms.createProfile("sRGB"), "RGB", "RGB")
        assert np.array_equal(slides[1].srgb_pixels(pixels),
                              np.asarray(ImageCms.applyTransform(Image.fromarray(pixels), fresh)))
    finally:
        for s in slides:
            s.close()


def test_large_region_of_a_thread_safe_reader_is_read_in_parallel_strips_with_the_same_bytes(tmp_path):
    """OpenSlide reads on several threads at once: a block's level-0 area is read as strips of rows
    on the process's threads (one call decoded a 4096 px NDPI block on one core), and the strips
    put together are the bytes one read gives."""
    from PIL import Image

    path = write_synthetic_slide(tmp_path / "s.svs", 1500, 1300, levels=1)
    source = SlideSource(path, direct=False)  # through OpenSlide, not the direct JPEG path
    try:
        assert source.slide.concurrent_reads
        calls = []
        real = source.slide.read_region

        def spy(location, level, size):
            calls.append((threading.current_thread().name, size))
            return real(location, level, size)
        source.slide.read_region = spy
        arr = source.read_l0(3, 5, 1403, 1290)
        assert [size for _, size in calls] == [(1400, 512), (1400, 512), (1400, 261)]
        assert len({name for name, _ in calls}) >= 2
        region = real((3 + source.bounds.x, 5 + source.bounds.y), 0, (1400, 1285))
        one = Image.new("RGB", region.size, source.background)
        one.paste(region, mask=region)
        assert np.array_equal(arr, source.srgb_array(one))
        calls.clear()
        source.read_l0(0, 0, 1400, 1000)  # under two strips' height: one read
        assert len(calls) == 1
    finally:
        source.close()
