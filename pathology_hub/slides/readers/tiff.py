"""TIFF read with tifffile: what OpenSlide does not report, and the fast JPEG path.

Two jobs, both on the TIFF directories rather than through OpenSlide:

* :func:`inspect` runs before any decoder: it refuses a truncated file with the byte counts,
  refuses sample layouts the viewer would show wrong (16-bit, multiplex QPTIFF, multi-channel
  OME-TIFF) with what was found, and returns the facts OpenSlide misses (QPTIFF pixel size,
  NDPI fluorescence channel). Channel display is a later slice; until then this reader only
  detects and reports, it does not render those files.
* :class:`DirectJpeg` decodes level-0 JPEG tiles of Aperio and generic tiled TIFF straight
  from the file with imagecodecs (libjpeg-turbo), ~0.2 ms a tile against 1.5-3.5 ms through
  OpenSlide's read_region. The tiling source uses it when :meth:`DirectJpeg.try_open` accepts
  the layout.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from ..identify import Magic
from .parallel import thread_map

_JPEG = 7
#: OpenSlide vendors whose level 0 is page 0 of the TIFF, with nothing in front of it.
DIRECT_VENDORS = {"aperio", "generic-tiff"}


class TileDecodeError(Exception):
    """A native tile could not be decoded (the tiling source turns this into its own error)."""


def detect(path: str, magic: Magic) -> str | None:
    return "tiff" if magic is Magic.TIFF else None


def inspect(path: str, magic: Magic) -> Any:
    """Refuse what would be shown wrong; return :class:`~..tiffinfo.TiffFacts` (None: not a TIFF)."""
    if detect(path, magic) is None:
        return None
    from ..probe import reject_if_truncated
    from ..tiffinfo import inspect_tiff

    reject_if_truncated(path, magic)
    return inspect_tiff(path)


class DirectJpeg:
    """Decodes level-0 JPEG tiles straight from the TIFF, bypassing OpenSlide.

    The tile walk and decoding work for any compression tifffile decodes; :mod:`pathology_hub.tiling.
    direct_tiles` reuses them for deflate, LZW, zstd and JPEG 2000 tiles with its own eligibility test."""

    def __init__(self, path: str, background: tuple[int, int, int]) -> None:
        import tifffile

        self._tif = tifffile.TiffFile(path)
        page = self._tif.pages[0]
        self.page = page
        self.tw, self.th = page.tilewidth, page.tilelength
        self.width, self.height = page.imagewidth, page.imagelength
        self.cols = math.ceil(self.width / self.tw)
        self.offsets = page.dataoffsets
        self.counts = page.databytecounts
        self.tables = page.jpegtables
        self.fd = os.open(path, os.O_RDONLY)
        self.background = np.asarray(background, np.uint8)

    @classmethod
    def try_open(cls, path: str, vendor: str | None, dimensions: tuple[int, int],
                 background: tuple[int, int, int]) -> "DirectJpeg | None":
        """Only for layouts we fully understand; anything else keeps the reader's own decoding."""
        if vendor not in DIRECT_VENDORS:
            return None
        try:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                ok = (page.is_tiled and page.compression == _JPEG and page.samplesperpixel == 3
                      and page.bitspersample == 8 and page.planarconfig == 1 and page.imagedepth == 1
                      and (page.imagewidth, page.imagelength) == tuple(dimensions))
        except Exception:  # noqa: BLE001 - any doubt means "use the reader"
            return None
        return cls(path, background) if ok else None

    def read(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Pixels of [x0, x1) x [y0, y1); the file tiles are decoded on the process's threads,
        each into its own part of the output."""
        out = np.empty((y1 - y0, x1 - x0, 3), np.uint8)

        def fill(tile_xy: tuple[int, int]) -> None:
            tx, ty = tile_xy
            sx0, sy0 = tx * self.tw, ty * self.th
            ix0, iy0 = max(x0, sx0), max(y0, sy0)
            ix1, iy1 = min(x1, sx0 + self.tw, self.width), min(y1, sy0 + self.th, self.height)
            if ix1 <= ix0 or iy1 <= iy0:
                return
            dst = out[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
            tile = self.decode(tx, ty)
            if tile is None:
                dst[...] = self.background
            else:
                dst[...] = tile[iy0 - sy0:iy1 - sy0, ix0 - sx0:ix1 - sx0]

        thread_map(fill, [(tx, ty) for ty in range(y0 // self.th, (y1 - 1) // self.th + 1)
                          for tx in range(x0 // self.tw, (x1 - 1) // self.tw + 1)])
        return out

    def decode(self, tx: int, ty: int) -> np.ndarray | None:
        """One native tile as (th, tw, 3) uint8; None for a tile the scanner skipped (background)."""
        index = ty * self.cols + tx
        count = self.counts[index]
        if count == 0:
            return None  # sparse TIFF: the scanner skipped this tile, it is background
        data = os.pread(self.fd, count, self.offsets[index])
        try:
            arr = self.page.decode(data, index, jpegtables=self.tables)[0]
        except Exception as exc:  # noqa: BLE001 - imagecodecs raises its own error types
            raise TileDecodeError(f"source tile {tx},{ty} at level 0 is corrupt ({exc})") from exc
        if arr is None or arr.ndim != 4 or arr.shape[-1] != 3:
            raise TileDecodeError(f"source tile {tx},{ty} at level 0 could not be decoded")
        return arr[0]

    def close(self) -> None:
        os.close(self.fd)
        if self._tif is not None:
            self._tif.close()
