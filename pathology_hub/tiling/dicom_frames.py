"""The JPEG frames of a DICOM WSI series read straight from its instance files.

OpenSlide 4 costs 10-15 ms per 256 px frame of a DICOM WSI instance (it decodes through its
cache and composites ARGB); imagecodecs decodes the same frame in ~0.5-2 ms. Level 0 and every
scanner level the pipeline reads whole (the 4x level of a series, for the coarse levels) go
through here. Where a full-resolution Deep Zoom tile is exactly one frame, the scanner's own JPEG
is stored as the tile (:meth:`DicomFrames.frame_as_tile`): no decode-and-re-encode loss, and no
encoding time.

Only TILED_FULL, single focal plane, single optical path, JPEG baseline YBR instances whose frames
are one fragment each qualify; anything else stays with OpenSlide. Only the frame byte ranges are
indexed (one small read per frame), so memory stays flat.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..slides.readers.dicom import series_files
from ..slides.readers.tiff import DirectJpeg
from .errors import TilingError

if TYPE_CHECKING:
    from .source import SlideSource

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
#: Instances looked at for a series' other levels; a series of more than this is left to OpenSlide.
_MAX_INSTANCES = 256


class DicomFrames(DirectJpeg):
    """The frames of one instance (one pyramid level); ``read`` is :class:`DirectJpeg`'s tile walk."""

    def __init__(self, path: str, background: tuple[int, int, int], meta: dict, level: int = 0) -> None:
        self.level = level
        self.tw, self.th = meta["tile"]
        self.width, self.height = meta["size"]
        self.cols = math.ceil(self.width / self.tw)
        self.offsets, self.counts = meta["offsets"], meta["counts"]
        self.fd = os.open(path, os.O_RDONLY)
        self.background = np.asarray(background, np.uint8)

    @classmethod
    def level0(cls, source: "SlideSource") -> "DicomFrames | None":
        """Level 0 of a series OpenSlide opened, when its frames qualify and it has no bounds offset."""
        if source.reader_kind != "openslide" or source.vendor != "dicom":
            return None
        try:
            meta = frame_index(source.path)
        except Exception:  # noqa: BLE001 - any doubt means "let OpenSlide decode"
            return None
        b = source.bounds
        if meta is None or (b.x, b.y, b.width, b.height) != (0, 0, *meta["size"]):
            return None
        return cls(source.path, source.background, meta)

    @classmethod
    def scanner_level(cls, source: "SlideSource", level: int) -> "DicomFrames | None":
        """Scanner ``level`` (> 0) of the series: the one volume instance of level 0's series
        (:func:`~pathology_hub.slides.readers.dicom.series_files`) with that level's size, when its
        frames qualify; None if there is not exactly one."""
        try:
            import pydicom

            want = tuple(source.slide.level_dimensions[level])
            found = []
            files = series_files(Path(source.path))  # the instances OpenSlide reads as this series
            if len(files) > _MAX_INSTANCES:
                return None
            for path in files:
                try:
                    ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[
                        "ImageType", "TotalPixelMatrixColumns", "TotalPixelMatrixRows"])
                except Exception:  # noqa: BLE001 - unreadable: OpenSlide skips it as well
                    continue
                image_type = list(ds.get("ImageType", []))
                if (len(image_type) > 2 and image_type[2] == "VOLUME"
                        and (ds.get("TotalPixelMatrixColumns"), ds.get("TotalPixelMatrixRows")) == want):
                    found.append(path)
            if len(found) != 1:
                return None
            meta = frame_index(str(found[0]))
        except Exception:  # noqa: BLE001 - any doubt means "let OpenSlide decode"
            return None
        if meta is None or tuple(meta["size"]) != want:
            return None
        return cls(str(found[0]), source.background, meta, level)

    def read_padded(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """:meth:`read`, with the part beyond the level's edge as background (as OpenSlide's
        transparent pixels composited on it)."""
        if x1 <= self.width and y1 <= self.height:
            return self.read(x0, y0, x1, y1)
        out = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
        out[...] = self.background
        ix1, iy1 = min(x1, self.width), min(y1, self.height)
        if ix1 > x0 and iy1 > y0:
            out[:iy1 - y0, :ix1 - x0] = self.read(x0, y0, ix1, iy1)
        return out

    def decode(self, tx: int, ty: int) -> np.ndarray | None:
        import imagecodecs

        index = ty * self.cols + tx
        data = os.pread(self.fd, self.counts[index], self.offsets[index])
        try:
            arr = imagecodecs.jpeg8_decode(data)
        except Exception as exc:  # noqa: BLE001
            raise TilingError(f"source frame {index + 1} at level {self.level} is corrupt ({exc})") from exc
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise TilingError(f"source frame {index + 1} at level {self.level} could not be decoded")
        return arr

    def frame_as_tile(self, col: int, row: int, size: int) -> bytes | None:
        """Frame (col, row) as stored, when it is exactly a ``size`` px Deep Zoom tile (not cut by
        the image edge) in a JPEG that browsers decode as this module does; else None."""
        if ((self.tw, self.th) != (size, size) or (col + 1) * size > self.width
                or (row + 1) * size > self.height):
            return None
        index = row * self.cols + col
        data = os.pread(self.fd, self.counts[index], self.offsets[index])
        return data if plain_ycbcr_jpeg(data, size) else None

    def close(self) -> None:
        os.close(self.fd)


#: Start-of-frame markers other than baseline (SOF0): progressive, lossless, arithmetic coding.
_OTHER_SOF = {0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def plain_ycbcr_jpeg(data: bytes, size: int) -> bool:
    """Whether ``data`` is a baseline 8-bit JPEG of size x size with three components numbered 1, 2,
    3, no Adobe colour-transform segment and no embedded ICC profile. Every JPEG decoder reads such
    a stream as YCbCr, the way :meth:`DicomFrames.decode` does; a stream whose colours a browser
    could read otherwise (RGB components, an Adobe flag, a profile it would apply) is re-encoded."""
    if data[:2] != b"\xff\xd8":
        return False
    i, sof = 2, False
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return False
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        segment = data[i + 4:i + 2 + length]
        if marker == 0xEE or marker == 0xE2 and segment.startswith(b"ICC_PROFILE") or marker in _OTHER_SOF:
            return False
        if marker == 0xC0:
            if len(segment) < 15:
                return False
            height, width = int.from_bytes(segment[1:3], "big"), int.from_bytes(segment[3:5], "big")
            if segment[0] != 8 or (width, height) != (size, size) or segment[5] != 3 or segment[6:15:3] != b"\x01\x02\x03":
                return False
            sof = True
        if marker == 0xDA:
            return sof
        i += 2 + length
    return False


def frame_index(path: str) -> dict | None:
    """Frame byte ranges of a TILED_FULL, single-plane, JPEG-baseline YBR instance, else None."""
    import pydicom

    with open(path, "rb") as f:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        if (str(ds.file_meta.TransferSyntaxUID) != JPEG_BASELINE
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
