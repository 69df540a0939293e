"""Level-0 pixels of tiled TIFF slides decoded straight from the file, for any compression
tifffile/imagecodecs decodes losslessly the same way OpenSlide does.

OpenSlide's read_region costs ~0.6 s for a 4096 x 4096 block of a deflate-tiled TIFF (it decodes
into a cache, then composites ARGB); tifffile with imagecodecs decodes the same 256 tiles in
~0.1 s. :mod:`.source` already does this for JPEG tiles; this module covers the general path
(deflate, LZW, zstd, uncompressed, Aperio RGB JPEG 2000) without touching the slide reader, and
gives exactly what :meth:`SlideSource.read_l0` gives: bounds-relative pixels, sparse tiles as the
background colour, sRGB through the slide's own transform.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np
import tifffile

from ..slides.readers.tiff import DirectJpeg, TileDecodeError
from .dicom_frames import DicomFrames
from .errors import TilingError
from .source import SlideSource

#: TIFF compressions decoded here. JPEG (7) is the slide reader's own direct path; Aperio 33003
#: (YCbCr JPEG 2000) is left to OpenSlide, which converts the colour space itself.
_COMPRESSIONS = {1, 5, 8, 32946, 33005, 34712, 50000}
_VENDORS = {"aperio", "generic-tiff"}


class DirectTiles(DirectJpeg):
    """Decodes level-0 tiles of one slide file; one per SlideSource (see :func:`read_l0`). The tile
    walk and decoding are the reader's (:class:`~pathology_hub.slides.readers.tiff.DirectJpeg`);
    only which files qualify differs."""

    @classmethod
    def try_open(cls, source: SlideSource) -> "DirectTiles | None":
        """Only layouts whose level 0 is the first TIFF page, RGB, 8 bits, tiled; else None."""
        if source.reader_kind != "openslide" or source.vendor not in _VENDORS:
            return None
        try:
            with tifffile.TiffFile(source.path) as tif:
                page = tif.pages[0]
                ok = (page.is_tiled and int(page.compression) in _COMPRESSIONS and page.samplesperpixel == 3
                      and page.bitspersample == 8 and page.planarconfig == 1 and page.imagedepth == 1
                      and int(page.photometric) == 2 and not page.extrasamples)
                dims = (page.imagewidth, page.imagelength)
        except Exception:  # noqa: BLE001 - any doubt means "let OpenSlide decode"
            return None
        b = source.bounds
        if not ok or (b.x, b.y, b.width, b.height) != (0, 0, *dims):
            return None
        try:
            return cls(source.path, source.background)
        except Exception:  # noqa: BLE001
            return None


_open: "weakref.WeakKeyDictionary[SlideSource, DirectTiles | DicomFrames | None]" = weakref.WeakKeyDictionary()
_levels: "weakref.WeakKeyDictionary[SlideSource, dict[int, DicomFrames | None]]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _direct(source: SlideSource) -> DirectTiles | DicomFrames | None:
    with _lock:
        if source not in _open:
            direct = DirectTiles.try_open(source) or DicomFrames.level0(source)
            _open[source] = direct
            if direct is not None:
                weakref.finalize(source, direct.close)
        return _open[source]


def _direct_level(source: SlideSource, level: int) -> DicomFrames | None:
    """Scanner ``level`` (> 0) decoded directly: DICOM WSI series whose level 0 is (each level is
    an instance file of its own; OpenSlide's reads of the 4x level were 1.3 s of a 20k x 15k build)."""
    if not isinstance(_direct(source), DicomFrames):
        return None
    with _lock:
        levels = _levels.setdefault(source, {})
        if level not in levels:
            direct = levels[level] = DicomFrames.scanner_level(source, level)
            if direct is not None:
                weakref.finalize(source, direct.close)
        return levels[level]


def read_l0(source: SlideSource, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """:meth:`SlideSource.read_l0`, decoded directly when the file allows it."""
    direct = _direct(source)
    if direct is None:
        return source.read_l0(x0, y0, x1, y1)
    b = source.bounds
    try:
        arr = direct.read(x0 + b.x, y0 + b.y, x1 + b.x, y1 + b.y)
    except TileDecodeError as exc:
        raise TilingError(str(exc)) from exc
    return source.srgb_pixels(arr)


def read_level(source: SlideSource, level: int, shift: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """:meth:`SlideSource.read_level`, decoded directly when the level's file allows it and the
    region maps to whole level pixels as OpenSlide maps it (an exact 2^shift level, or a read
    from the origin)."""
    direct = _direct_level(source, level) if level > 0 else None
    if direct is None or not (source.exact_shift(level) == shift or (x0, y0) == (0, 0)):
        return source.read_level(level, shift, x0, y0, x1, y1)
    arr = direct.read_padded(x0, y0, x1, y1)
    source.remember_level_read(level, shift, x0, y0, x1, y1, arr)
    return source.srgb_pixels(arr)


def native_jpeg(source: SlideSource, level: int, col: int, row: int) -> bytes | None:
    """The scanner's own JPEG for a full-resolution tile that is exactly one of its frames and
    needs no colour conversion, to be stored as the tile unchanged; else None (encode the pixels).
    The pipeline and on-demand rendering both ask here, so both give the same bytes."""
    if level != source.geometry.max_level or source.geometry.overlap:
        return None
    direct = _direct(source)
    if not isinstance(direct, DicomFrames) or source.needs_srgb:
        return None
    return direct.frame_as_tile(col, row, source.geometry.tile_size)
