"""KFBio (江丰生物) ``.kfb`` slides, read with the pure-Python ``kfbslide`` package.

Detection is the signature KFBio's own reader checks: ``KFB`` at byte 4, inside the first
header section. ``kfbslide`` already speaks OpenSlide's API and reports ``openslide.mpp-*``
and the scan magnification from the file header, so this is a thin wrapper; like every
decoder it only runs inside the sandboxed probe and the tiling workers.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import kfbslide
import numpy as np
from PIL import Image

from ..identify import Magic
from .base import SlideReader
from .tiff import TileDecodeError

LABEL = "KFBio KFB"
#: Decoded tiles kfbslide may keep per open slide.
TILE_CACHE_BYTES = 16 * 1024 * 1024


class KfbReader(SlideReader):
    name = "kfb"
    errors = (kfbslide.OpenSlideError, ValueError, OSError, KeyError, IndexError)

    def __init__(self, path: str, fmt: str | None = None) -> None:
        self.path = path
        self.format = "kfbio"
        self.slide = kfbslide.OpenSlide(path)
        if not self.slide.level_count:
            raise kfbslide.OpenSlideError("the file's tile index lists no pyramid level")
        # kfbslide keeps up to 256 MB of decoded RGBA tiles per open slide. The pipeline reads each
        # tile of a level once per block, and every tiling worker opens the slide: a 20k x 15k KFB
        # made 300 MB workers (120 MB for the same pixels as SVS). A small cache serves the
        # repeated reads there are (neighbouring coarse tiles).
        cache = getattr(self.slide, "_tile_cache", None)  # pinned kfbslide 0.3.x
        if cache is not None and hasattr(cache, "max_bytes"):
            cache.max_bytes = TILE_CACHE_BYTES

    @classmethod
    def detect(cls, path: str, magic: Magic) -> str | None:
        return "kfbio" if magic is Magic.KFB else None

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple(self.slide.level_dimensions)

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return tuple(self.slide.level_downsamples)

    @property
    def properties(self) -> Mapping[str, str]:
        return self.slide.properties

    @property
    def associated_images(self) -> Mapping[str, Image.Image]:
        return self.slide.associated_images

    def native_level0(self, background: tuple[int, int, int]) -> Any:
        """Level-0 JPEG tiles decoded straight from the file (about twice as fast as read_region,
        which decodes to RGBA through Pillow and pastes). None if kfbslide's index is not as expected."""
        try:
            return _KfbLevel0(self, background)
        except (AttributeError, KeyError, TypeError, IndexError):
            return None

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> Image.Image:
        return self.slide.read_region(location, level, size)

    def close(self) -> None:
        self.slide.close()


class _KfbLevel0:
    """Reads level 0 from kfbslide's parsed tile index (pinned kfbslide 0.3.x: ``_index``)."""

    def __init__(self, reader: KfbReader, background: tuple[int, int, int]) -> None:
        import imagecodecs

        index = reader.slide._index  # noqa: SLF001 - the parsed index; kfbslide is pinned
        scale0 = index.level_scales[0]
        self._decode_jpeg = imagecodecs.jpeg8_decode
        self.tile = int(index.tile_size)
        self.width, self.height = reader.dimensions
        self.lookup = {(x, y): i for (scale, x, y), i in index.lookup.items() if scale == scale0}
        self.entries = index.entries
        self.offsets = index.offsets
        self.background = np.asarray(background, np.uint8)
        self.fd = os.open(reader.path, os.O_RDONLY)

    def read(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        t = self.tile
        out = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
        out[...] = self.background  # tiles the scanner did not store are background
        for ty in range(max(y0, 0) // t, (min(y1, self.height) - 1) // t + 1):
            for tx in range(max(x0, 0) // t, (min(x1, self.width) - 1) // t + 1):
                index = self.lookup.get((tx * t, ty * t))
                if index is None:
                    continue
                tile = self._decode(index, tx, ty)
                sx0, sy0 = tx * t, ty * t
                ix0, iy0 = max(x0, sx0), max(y0, sy0)
                ix1, iy1 = min(x1, sx0 + tile.shape[1]), min(y1, sy0 + tile.shape[0])
                if ix1 > ix0 and iy1 > iy0:
                    out[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = tile[iy0 - sy0:iy1 - sy0, ix0 - sx0:ix1 - sx0]
        return out

    def _decode(self, index: int, tx: int, ty: int) -> np.ndarray:
        entry = self.entries[index]
        data = os.pread(self.fd, entry["size"], self.offsets[index])
        try:
            arr = self._decode_jpeg(data)
        except Exception as exc:  # noqa: BLE001 - imagecodecs raises its own error types
            raise TileDecodeError(f"source tile {tx},{ty} at level 0 is corrupt ({exc})") from exc
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        size = (entry["width"], entry["height"])
        if (arr.shape[1], arr.shape[0]) != size:  # as kfbslide does: the index's size wins
            arr = np.asarray(Image.fromarray(arr[..., :3]).resize(size))
        return arr[..., :3]

    def close(self) -> None:
        os.close(self.fd)
