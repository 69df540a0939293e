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

import math
import os
import threading
import weakref

import numpy as np
import tifffile

from ..slides.readers.tiff import DirectJpeg, TileDecodeError
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


_open: "weakref.WeakKeyDictionary[SlideSource, DirectTiles | None]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _direct(source: SlideSource) -> DirectTiles | None:
    with _lock:
        if source not in _open:
            direct = DirectTiles.try_open(source) or DirectDicomFrames.try_open_dicom(source)
            _open[source] = direct
            if direct is not None:
                weakref.finalize(source, direct.close)
        return _open[source]


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


class DirectDicomFrames(DirectTiles):
    """Level 0 of a DICOM WSI series (TILED_FULL, JPEG baseline frames) decoded straight from the
    instance file: OpenSlide 4 costs 10-15 ms per 256 px frame there, imagecodecs ~2 ms.

    Only the frame byte ranges are indexed (one small read per frame), so memory stays flat."""

    _JPEG_BASELINE = "1.2.840.10008.1.2.4.50"

    def __init__(self, path: str, background: tuple[int, int, int], meta: dict) -> None:
        self.tw, self.th = meta["tile"]
        self.width, self.height = meta["size"]
        self.cols = math.ceil(self.width / self.tw)
        self.offsets, self.counts = meta["offsets"], meta["counts"]
        self.fd = os.open(path, os.O_RDONLY)
        self.background = np.asarray(background, np.uint8)
        self._tif = None

    @classmethod
    def try_open_dicom(cls, source: SlideSource) -> "DirectDicomFrames | None":
        if source.reader_kind != "openslide" or source.vendor != "dicom":
            return None
        try:
            meta = _dicom_frames(source.path)
        except Exception:  # noqa: BLE001 - any doubt means "let OpenSlide decode"
            return None
        b = source.bounds
        if meta is None or (b.x, b.y, b.width, b.height) != (0, 0, *meta["size"]):
            return None
        return cls(source.path, source.background, meta)

    def decode(self, tx: int, ty: int) -> np.ndarray | None:
        import imagecodecs
        index = ty * self.cols + tx
        data = os.pread(self.fd, self.counts[index], self.offsets[index])
        try:
            arr = imagecodecs.jpeg8_decode(data)
        except Exception as exc:  # noqa: BLE001
            raise TilingError(f"source frame {index + 1} at level 0 is corrupt ({exc})") from exc
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise TilingError(f"source frame {index + 1} at level 0 could not be decoded")
        return arr

    def close(self) -> None:
        os.close(self.fd)


def _dicom_frames(path: str) -> dict | None:
    """Frame byte ranges of a TILED_FULL, single-plane, JPEG-baseline YBR instance, else None."""
    import struct

    import pydicom
    with open(path, "rb") as f:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        if (str(ds.file_meta.TransferSyntaxUID) != DirectDicomFrames._JPEG_BASELINE
                or ds.get("DimensionOrganizationType") != "TILED_FULL"
                or ds.get("PhotometricInterpretation") not in ("YBR_FULL_422", "YBR_FULL")
                or int(ds.get("SamplesPerPixel", 0)) != 3 or int(ds.get("TotalPixelMatrixFocalPlanes", 1)) != 1
                or int(ds.get("NumberOfOpticalPaths", 1)) != 1):
            return None
        tile = (int(ds.Columns), int(ds.Rows))
        size = (int(ds.TotalPixelMatrixColumns), int(ds.TotalPixelMatrixRows))
        frames = int(ds.NumberOfFrames)
        if frames != math.ceil(size[0] / tile[0]) * math.ceil(size[1] / tile[1]):
            return None
        group, elem, vr, _, length = struct.unpack("<HH2s2sI", f.read(12))
        if (group, elem) != (0x7FE0, 0x0010) or length != 0xFFFFFFFF:
            return None
        offsets, counts = [], []
        first = True
        while True:
            g, e, n = struct.unpack("<HHI", f.read(8))
            if (g, e) == (0xFFFE, 0xE0DD):
                break
            if (g, e) != (0xFFFE, 0xE000):
                return None
            if first:  # the basic offset table
                first = False
                f.seek(n, 1)
                continue
            offsets.append(f.tell())
            counts.append(n)
            f.seek(n, 1)
        if len(offsets) != frames:  # frames split into several fragments: leave it to OpenSlide
            return None
    return {"tile": tile, "size": size, "offsets": offsets, "counts": counts}
