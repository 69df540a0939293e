"""Microscope-camera photos (JPEG/PNG/TIFF) as a tiled TIFF OpenSlide can read.

OpenSlide opens whole-slide formats only; converting an accepted photo once
lets the same Deep Zoom pipeline and viewer serve it like any other slide.
The photo was already validated (pixel limit, decompression-bomb guard) in the
sandboxed probe before it gets here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

MAX_PIXELS = 200_000_000


def photo_to_tiled_tiff(src: str | os.PathLike[str], dst: str | os.PathLike[str], tile: int = 256) -> Path:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    with Image.open(src) as im:
        rgb = np.asarray(im.convert("RGB"))
    dst = Path(dst)
    tmp = dst.with_suffix(".part")
    # Tiled, JPEG-compressed, with 2x-reduced sub-resolution pages: OpenSlide's generic-tiff reader.
    levels = [rgb]
    while max(levels[-1].shape[:2]) > tile:
        prev = levels[-1]
        img = Image.fromarray(prev).reduce(2)
        levels.append(np.asarray(img))
    with tifffile.TiffWriter(tmp, bigtiff=rgb.nbytes > 3_000_000_000) as tif:
        for i, arr in enumerate(levels):
            tif.write(arr, tile=(tile, tile), compression="jpeg", compressionargs={"level": 90},
                      photometric="rgb", subfiletype=1 if i else 0, metadata=None)
    os.replace(tmp, dst)
    return dst
