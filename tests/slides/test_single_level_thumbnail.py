"""A slide without small levels is accepted, and its thumbnail never holds the whole level.

Found by the tiling benchmark: a single-level 20,000 x 15,000 deflate TIFF was rejected at upload
as "needing more memory than the safety limit allows", because the probe's thumbnail read the
whole level at once (1.2 GB of RGBA before any copy) under the sandbox's 2 GB address-space limit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from pathology_hub.slides import inspect_slide
from pathology_hub.slides.readers import base
from pathology_hub.slides.readers.openslide_reader import OpenSlideReader


def _single_level(path: Path, width: int, height: int) -> Path:
    """A deflate-tiled RGB TIFF of one level, with structure in every tile (cheap to write)."""
    ys, xs = np.mgrid[0:256, 0:256]
    tiles = {}

    def tile(tx: int, ty: int) -> np.ndarray:
        key = (tx % 5, ty % 3)
        if key not in tiles:
            # smooth within a tile (as tissue is at thumbnail scale), different from tile to tile
            tiles[key] = np.stack([60 + xs * (key[0] + 1) // 8, 80 + ys * (key[1] + 1) // 6,
                                   np.full_like(xs, 40 * key[0] + 30 * key[1])], -1).astype(np.uint8)
        return tiles[key]

    gen = (tile(tx, ty) for ty in range(-(-height // 256)) for tx in range(-(-width // 256)))
    tifffile.imwrite(path, gen, shape=(height, width, 3), dtype=np.uint8, tile=(256, 256),
                     compression="zlib", photometric="rgb")
    return path


def test_thumbnail_of_a_large_level_is_read_block_by_block(tmp_path, monkeypatch):
    path = _single_level(tmp_path / "single.tiff", 5000, 4200)  # 21 Mpx: above the whole-read limit
    reads: list[int] = []
    real = OpenSlideReader.read_rgb

    def recording(self, level, x, y, w, h):
        reads.append(w * h)
        return real(self, level, x, y, w, h)

    with OpenSlideReader(str(path)) as reader:
        whole = Image.fromarray(reader.read_rgb(0, 0, 0, 5000, 4200))
        whole.thumbnail((512, 512), Image.LANCZOS)
        monkeypatch.setattr(OpenSlideReader, "read_rgb", recording)
        thumb = reader.get_thumbnail((512, 512))
    assert reads and max(reads) <= base.THUMBNAIL_BLOCK ** 2 < 5000 * 4200
    assert thumb.size == whole.size
    diff = np.abs(np.asarray(thumb, np.int16) - np.asarray(whole, np.int16))
    # the same picture, box- then LANCZOS-reduced (they differ only along the hard edges between tiles)
    assert diff.mean() < 2.0 and np.percentile(diff, 90) < 6, (diff.mean(), np.percentile(diff, 90))


@pytest.mark.slow
def test_single_level_slide_is_accepted_within_the_sandbox_memory_limit(tmp_path):
    """12,000 x 9,000 under a 768 MB limit: the whole-level read needed more and was rejected."""
    path = _single_level(tmp_path / "single-12k.tiff", 12_000, 9_000)
    desc = inspect_slide(path, memory_limit=768 << 20)
    assert desc.level_dimensions == ((12_000, 9_000),) and desc.kind == "wsi"
