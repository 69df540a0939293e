"""The general tiling path: each source region read once, coarse levels and thumbnail built from
the blocks' own pixels (never by re-reading full resolution), bounded memory, no process pool for
a small slide; pixels checked against a NumPy reference computed from the source array."""

from __future__ import annotations

import io
import math
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile
from PIL import Image

from pathology_hub.tiling import PyramidReader, build_pyramid, render_tile
from pathology_hub.tiling import direct_tiles, pipeline, render
from pathology_hub.tiling.geometry import Geometry
from pathology_hub.tiling.layout import thumbnail_key
from pathology_hub.tiling.render import tile_pixels
from pathology_hub.tiling.source import SlideSource

from .conftest import decode, psnr


def _pattern(h: int, w: int, seed: int = 1) -> np.ndarray:
    """Smooth colour field with texture and glass on one side: compressible yet not blank."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([128 + 90 * np.sin(xx / 97.0), 128 + 90 * np.cos(yy / 61.0),
                    128 + 60 * np.sin((xx + yy) / 41.0)], -1)
    img += rng.normal(0, 2, (h, w, 1)).astype(np.float32)
    img[:, : w // 7] = 255  # glass
    return np.clip(img, 0, 255).astype(np.uint8)


def _write(path, arr: np.ndarray, compression="zlib", sparse_first=False) -> str:
    with tifffile.TiffWriter(path) as tif:
        tif.write(arr, tile=(256, 256), compression=compression, photometric="rgb", metadata=None)
    return str(path)


def box_reduce(arr: np.ndarray, steps: int) -> np.ndarray:
    """Reference 2x2 mean with partial boxes at the right/bottom edge, rounded half up (NumPy only)."""
    a = arr.astype(np.int64)
    for _ in range(steps):
        h, w = a.shape[:2]
        ph, pw = h + h % 2, w + w % 2
        s = np.zeros((ph, pw, 3), np.int64)
        n = np.zeros((ph, pw, 1), np.int64)
        s[:h, :w], n[:h, :w] = a, 1
        s = s[0::2, 0::2] + s[1::2, 0::2] + s[0::2, 1::2] + s[1::2, 1::2]
        n = n[0::2, 0::2] + n[1::2, 0::2] + n[0::2, 1::2] + n[1::2, 1::2]
        a = (s + n // 2) // n
    return a.astype(np.uint8)


@pytest.fixture(scope="module")
def single_level(tmp_path_factory):
    """Single-level deflate-tiled generic TIFF, three blocks wide (OpenSlide vendor generic-tiff)."""
    arr = _pattern(700, 8300)
    return _write(tmp_path_factory.mktemp("gen") / "single.tiff", arr), arr


@pytest.mark.slow
def test_single_level_tiff_reads_each_source_tile_once_and_derives_coarse_levels(single_level, store, monkeypatch):
    path, arr = single_level
    monkeypatch.setattr(render, "DERIVE_FAR_PIXELS", 1_000_000)  # this 5.8 Mpx single-level file counts as large
    decodes: Counter = Counter()
    real_decode = direct_tiles.DirectTiles.decode

    def counting_decode(self, tx, ty):
        decodes[(tx, ty)] += 1
        return real_decode(self, tx, ty)

    def forbidden(*args, **kwargs):
        raise AssertionError("full-resolution pixels re-read outside the block pass")

    regions = []
    real_read = direct_tiles.DirectTiles.read

    def recording_read(self, x0, y0, x1, y1):
        regions.append((x1 - x0) * (y1 - y0))
        return real_read(self, x0, y0, x1, y1)

    monkeypatch.setattr(direct_tiles.DirectTiles, "decode", counting_decode)
    monkeypatch.setattr(direct_tiles.DirectTiles, "read", recording_read)
    monkeypatch.setattr(SlideSource, "coarse_tile", forbidden)
    monkeypatch.setattr(SlideSource, "read_l0", forbidden)  # the general path decodes directly
    monkeypatch.setattr(SlideSource, "thumbnail", forbidden)
    result = build_pyramid(path, store, "pyramids/single/v1", workers=1)
    assert result.source_reader == "openslide"
    tiles = {(tx, ty) for tx in range(math.ceil(8300 / 256)) for ty in range(math.ceil(700 / 256))}
    assert set(decodes) == tiles and max(decodes.values()) == 1, "each source tile decoded exactly once"
    # memory stays per block: no read is larger than one block (before: whole-image coarse reads)
    assert len(regions) == 3 and max(regions) <= 4096 * 700 < arr.shape[0] * arr.shape[1]

    monkeypatch.undo()
    monkeypatch.setattr(render, "DERIVE_FAR_PIXELS", 1_000_000)
    reader = PyramidReader(store, "pyramids/single/v1")
    g = reader.geometry
    source = SlideSource(path)
    assert render.derived_levels(source) == g.coarse_levels
    mosaic = render.Mosaic(source, 5)  # the blocks' pieces tile the level: exactly the reference box reduce
    for bx, by in g.iter_blocks():
        mosaic.add(bx, by, render.block_piece(source, bx, by, 5))
    assert np.array_equal(mosaic.pixels, box_reduce(arr, 5))
    for level in range(g.level_count):
        depth = g.depth(level)
        ref = box_reduce(arr, depth)
        cols, rows = g.level_tiles(level)
        if level in g.coarse_levels and level not in g.coarse_levels[-3:] + g.coarse_levels[:1]:
            continue  # every derived tile reads its whole footprint on demand: a few levels suffice
        sample = {(0, 0), (cols - 1, rows - 1), (cols // 2, rows // 2)} if level not in g.coarse_levels else {(0, 0)}
        for col, row in sample:
            x, y, w, h = g.tile_box(level, col, row)
            ours = decode(reader.tile(level, col, row))
            want = ref[y:y + h, x:x + w]
            clipped = (x + w) * 2 ** depth > g.width or (y + h) * 2 ** depth > g.height
            if depth > 0 and level not in g.coarse_levels and clipped:
                continue  # fine-level edge tiles keep DeepZoomGenerator's LANCZOS (tested elsewhere)
            assert ours.shape[:2] == want.shape[:2] == (h, w)
            if not clipped:  # before encoding: exactly the reference box reduce of the source array
                assert np.array_equal(tile_pixels(source, level, col, row), want), (level, col, row)
            elif min(h, w) >= 16:  # cut by the edge: stretched like DeepZoomGenerator, close to the box
                assert psnr(tile_pixels(source, level, col, row), want) > 25, (level, col, row)
            if level in g.coarse_levels and (col, row) == (0, 0):  # on demand: the stored tile's bytes
                assert render_tile(path, level, col, row) == reader.tile(level, col, row)
            diff = np.abs(ours - want)
            if min(h, w) >= 64:  # JPEG Q80 of the stored tile (thin tiles are all block edges)
                assert diff.mean() < 3 and np.percentile(diff, 99) < 16 and psnr(ours, want) > 33, level
    thumb = np.asarray(Image.open(io.BytesIO(store.get_bytes(thumbnail_key("pyramids/single/v1")))).convert("RGB"))
    assert max(thumb.shape[:2]) == 1024 or max(thumb.shape[:2]) == max(box_reduce(arr, 3).shape[:2])
    ref = np.asarray(Image.fromarray(box_reduce(arr, 3)).resize((thumb.shape[1], thumb.shape[0]), Image.LANCZOS))
    assert psnr(thumb, ref) > 30


def _stub(width: int, height: int, levels: dict[int, int]):
    """What the policy reads of a source: geometry, scanner_level(depth), exact_shift(level)."""
    def scanner_level(depth):
        best = 0
        for lv, k in levels.items():
            if k <= depth and k >= levels.get(best, 0):
                best = lv
        return best
    return SimpleNamespace(geometry=Geometry(width, height), scanner_level=scanner_level,
                           exact_shift=lambda lv: levels.get(lv), slide=SimpleNamespace(companion_view=False))


def test_policy_for_a_single_level_100k_slide():
    """100,000 x 100,000 without levels: every coarse level and the thumbnail from a 29 MB mosaic."""
    src = _stub(100_000, 100_000, {})
    g = src.geometry
    assert render.derived_levels(src) == g.coarse_levels
    depth = render.mosaic_depth(src)
    assert depth == 5
    w, h = -(-g.width >> depth), -(-g.height >> depth)
    assert w * h * 3 < 30 * 2 ** 20
    small = _stub(16_000, 12_000, {})  # the 178 s / 2.3 GB case of issue #19
    assert render.derived_levels(small) == small.geometry.coarse_levels and render.mosaic_depth(small) == 3
    # Even a small file without levels: its coarse levels are not re-read from full resolution.
    assert render.derived_levels(_stub(2000, 1500, {})) == _stub(2000, 1500, {}).geometry.coarse_levels
    assert render.derived_levels(_stub(600, 400, {})) == _stub(600, 400, {}).geometry.coarse_levels


def test_policy_keeps_scanner_levels_for_the_first_view():
    """An Aperio-like pyramid (4x, 16x, 64x): coarse levels stay early, read from its small levels."""
    src = _stub(100_000, 100_000, {1: 2, 2: 4, 3: 6})
    assert render.derived_levels(src) == []
    assert render.thumbnail_depth(src) is None
    assert render.mosaic_depth(src) is None


def test_small_slide_never_starts_a_process_pool(synthetic_slide, store, monkeypatch):
    def no_pool(*args, **kwargs):
        raise AssertionError("a process pool was started for a one-block slide")
    monkeypatch.setattr(pipeline, "ProcessPoolExecutor", no_pool)
    result = build_pyramid(str(synthetic_slide), store, "pyramids/small/v1", workers=2)
    assert result.packs_written >= 2


@pytest.mark.parametrize("compression", ["zlib", "lzw", "zstd", 33005])
def test_direct_decoding_equals_openslide(tmp_path, compression):
    arr = _pattern(600, 700, seed=2)
    if compression == 33005:
        path = tmp_path / "j2k.svs"
        with tifffile.TiffWriter(path) as tif:
            tif.write(arr, tile=(256, 256), compression=33005, compressionargs={"level": 50}, photometric="rgb",
                      metadata=None, description="Aperio Image Library v10.0.51\r\n700x600 [0,0 700x600] "
                                                 "(256x256) J2K/KDU Q=30|AppMag = 40|MPP = 0.25")
        path = str(path)
    else:
        path = _write(tmp_path / "t.tiff", arr, compression)
    source = SlideSource(path)
    assert direct_tiles._direct(source) is not None
    for box in [(0, 0, 700, 600), (255, 3, 513, 599), (600, 500, 700, 600)]:
        assert np.array_equal(direct_tiles.read_l0(source, *box), source.read_l0(*box))
    if compression != 33005:
        assert np.array_equal(direct_tiles.read_l0(source, 0, 0, 700, 600), arr)


def test_dicom_frames_decoded_directly_equal_openslide(shared_slides, tmp_path, store):
    """A TILED_FULL JPEG DICOM WSI series (bench/tiling.py's writer, from OpenSlide's DICOM fixture)."""
    from bench.tiling import write_dicom_wsi
    path = write_dicom_wsi(tmp_path / "dcm", 1300, 700)
    source = SlideSource(str(path))
    assert source.vendor == "dicom"
    assert isinstance(direct_tiles._direct(source), direct_tiles.DicomFrames)
    # its embedded profile is sRGB: the transform maps every colour to itself and is skipped
    assert source.icc and source.icc_is_identity()
    for box in [(0, 0, 1300, 700), (255, 3, 769, 699), (1200, 600, 1300, 700)]:
        assert np.array_equal(direct_tiles.read_l0(source, *box), source.read_l0(*box))
    fixture = SlideSource(str(shared_slides / "dicom-boxes_0.dcm"))  # RGB JPEG frames: left to OpenSlide
    assert direct_tiles._direct(fixture) is None
    result = build_pyramid(str(path), store, "pyramids/dcm/v1", workers=1)
    reader = PyramidReader(store, "pyramids/dcm/v1")
    g = reader.geometry
    ref = source.read_l0(0, 0, 1300, 700).astype(float)
    assert result.tiles_total == g.tile_count()
    assert psnr(decode(reader.tile(g.max_level, 2, 1)), ref[256:512, 512:768]) > 33


@pytest.mark.slow
def test_resumed_build_rebuilds_derived_levels_from_stored_blocks_byte_identically(single_level, store, monkeypatch):
    """Killed after some blocks: the stored blocks still hand their pieces to the mosaic (re-read,
    not re-encoded), and the top pack and thumbnail come out as in an uninterrupted build."""
    from pathology_hub.tiling.layout import block_key, manifest_key, top_key
    path, _ = single_level
    monkeypatch.setattr(render, "DERIVE_FAR_PIXELS", 1_000_000)
    build_pyramid(path, store, "pyramids/whole/v1", workers=1)
    prefix = "pyramids/killed/v1"
    build_pyramid(path, store, prefix, workers=1)
    for key in (top_key(prefix), block_key(prefix, 1, 0), thumbnail_key(prefix), manifest_key(prefix)):
        store.delete(key)
    result = build_pyramid(path, store, prefix, workers=1)
    assert result.packs_skipped == 2 and result.packs_written == 2  # blocks 0 and 2 kept; block 1 and top
    for key in (top_key, thumbnail_key):
        assert store.get_bytes(key(prefix)) == store.get_bytes(key("pyramids/whole/v1"))
    assert store.get_bytes(block_key(prefix, 1, 0)) == store.get_bytes(block_key("pyramids/whole/v1", 1, 0))
