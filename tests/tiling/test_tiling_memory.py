"""Memory a tiling worker needs for one level-0 block (issue #19: a single-level 100,000 x 100,000
slide must tile in under 500 MB for the whole process tree; bench/tiling_memory.py measures that,
docs/tiling-memory.md has the numbers). Each pool worker renders one 4096 x 4096 block at a time;
what it holds beyond the block's own 48 MB of pixels is multiplied by the number of workers."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import tifffile

from pathology_hub.tiling import pipeline, render
from pathology_hub.tiling.geometry import BLOCK_TILES, TILE_SIZE
from pathology_hub.tiling.source import SlideSource

from .conftest import psnr

MB = 2**20
SPAN = BLOCK_TILES * TILE_SIZE  # one level-0 block: 4096 px


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise LookupError(field)


def _peak_above_start(fn) -> int:
    """Resident bytes ``fn`` needed at its peak beyond what the process held when it started
    (VmHWM reset through /proc/self/clear_refs, Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    start = _status("VmRSS")
    result = fn()
    peak = _status("VmHWM") - start
    del result
    return peak


@pytest.fixture(scope="module")
def tissue_block(tmp_path_factory):
    """A single-level JPEG-tiled TIFF of exactly one block, tissue everywhere (no tile is blank),
    so every fine level is rendered: the worst case for a block's working set."""
    rng = np.random.default_rng(19)
    small = rng.integers(120, 230, (SPAN // 64, SPAN // 64, 3), dtype=np.uint8)
    arr = np.repeat(np.repeat(small, 64, axis=0), 64, axis=1)
    arr[::7] = arr[::7] // 2  # some texture, so no tile is flat
    path = tmp_path_factory.mktemp("mem") / "block.tiff"
    tifffile.imwrite(path, arr, tile=(512, 512), compression="jpeg", compressionargs={"level": 85},
                     photometric="rgb", metadata=None)
    return str(path)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_a_block_needs_little_more_than_its_own_pixels(tissue_block, monkeypatch):
    # Coarse levels of this one-block slide are derived from the mosaic, as for 100k x 100k.
    monkeypatch.setattr(render, "DERIVE_FAR_PIXELS", 1_000_000)
    source = SlideSource(tissue_block)
    assert source.reader_kind == "jpeg-direct"
    depth = render.mosaic_depth(source)
    assert depth is not None
    pipeline._block(source, 0, 0, "warm/b0-0", 80, depth)  # first-call imports and decoder tables
    block_bytes = SPAN * SPAN * 3
    peak = _peak_above_start(lambda: pipeline._block(source, 0, 0, "k/b0-0", 80, depth))
    # The block's pixels (48 MB) plus its first 2x reduction (12 MB) and a few MB of tiles and
    # strips. Before: each 2x reduction went through a whole-block RGBX copy in Pillow
    # (64 + 16 + 12 MB on top of the block): 2.7x the block, ~130 MB per worker.
    assert peak < 1.6 * block_bytes, f"{peak / MB:.0f} MB for a {block_bytes / MB:.0f} MB block"


def test_reduce2_in_strips_equals_one_pillow_reduce():
    """The strip-wise 2x2 box mean is Pillow's whole-image reduce(2), edges included."""
    from PIL import Image
    rng = np.random.default_rng(5)
    for shape in [(1, 1), (3, 5), (513, 700), (1025, 1023), (2 * SPAN // 4 + 3, 37), (1537, 3)]:
        arr = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
        want = np.asarray(Image.fromarray(arr).reduce(2))
        assert np.array_equal(render.reduce2(arr), want), shape
        view = np.asarray(Image.fromarray(rng.integers(0, 256, (shape[0] + 4, shape[1] + 6, 3), dtype=np.uint8)))
        sliced = view[2:2 + shape[0], 3:3 + shape[1]]  # a non-contiguous view, as chain.tile() gives
        assert np.array_equal(render.reduce2(sliced), np.asarray(Image.fromarray(np.ascontiguousarray(sliced)).reduce(2)))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_thumbnail_from_a_100k_mosaic_needs_about_the_mosaic_again_not_twice():
    """The parent makes the thumbnail of a single-level 100k x 100k slide from its 3,125 px mosaic
    (29 MB). Before: Pillow's RGBX copy of it plus a full-size resampling pass, 53 MB more; now
    box-halved in strips first, 27 MB more."""
    from types import SimpleNamespace

    from PIL import Image
    side = -(-100_000 >> 5)
    axis = np.arange(side)
    pixels = np.empty((side, side, 3), np.uint8)
    pixels[..., 0] = (128 + 100 * np.sin(axis / 53.0)).astype(np.uint8)[None, :]
    pixels[..., 1] = (128 + 100 * np.cos(axis / 37.0)).astype(np.uint8)[:, None]
    ramp = (axis % 256).astype(np.uint8)
    pixels[..., 2] = np.add.outer(ramp, ramp)  # wraps mod 256: diagonal bands
    stored = {}
    build = SimpleNamespace(prefix="pyramids/t/v1", existing={},
                            _put_early=lambda key, data, content_type: stored.update({key: data}))
    peak = _peak_above_start(lambda: pipeline._Build._store_thumbnail(build, SimpleNamespace(pixels=pixels)))
    assert peak < 1.4 * pixels.nbytes, f"{peak / MB:.0f} MB for a {pixels.nbytes / MB:.0f} MB mosaic"
    (data,) = stored.values()
    thumb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert thumb.shape == (1024, 1024, 3)
    want = Image.fromarray(pixels)
    want.thumbnail((1024, 1024), Image.LANCZOS)  # the former way: the same picture within JPEG error
    assert psnr(thumb, np.asarray(want)) > 30
