"""Formats OpenSlide reads: Aperio SVS, Hamamatsu NDPI/VMS, MIRAX, Leica SCN, Ventana BIF,
Philips TIFF, Sakura SVSLIDE, generic tiled TIFF and standard DICOM WSI.

Detection is OpenSlide's own ``detect_format`` (it checks vendor tags and signatures, not
names). The wrapper only narrows OpenSlide's API to :class:`.base.SlideReader`.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import openslide
from PIL import Image

from ..identify import Magic
from .base import THUMBNAIL_WHOLE_PIXELS, VENDOR, SlideReader, bounded_thumbnail, thumbnail_level

#: Human names for OpenSlide's detect_format values, for messages.
FORMAT_LABELS = {
    "aperio": "Aperio SVS",
    "hamamatsu": "Hamamatsu NDPI/VMS",
    "mirax": "3DHISTECH MIRAX",
    "leica": "Leica SCN",
    "ventana": "Ventana BIF",
    "philips": "Philips TIFF",
    "sakura": "Sakura SVSLIDE",
    "generic-tiff": "generic tiled TIFF",
    "dicom": "DICOM WSI",
    "trestle": "Trestle TIFF",
    "zeiss": "Zeiss CZI",
}


class OpenSlideReader(SlideReader):
    name = "openslide"
    errors = (openslide.OpenSlideError,)
    #: "OpenSlide is thread-safe" (its API documentation): one handle serves every thread, and
    #: ctypes releases the GIL for the duration of each read.
    concurrent_reads = True

    def __init__(self, path: str, fmt: str | None = None) -> None:
        self.path = path
        self.slide = openslide.OpenSlide(path)
        self.format = fmt or openslide.OpenSlide.detect_format(path) or "unknown"

    @classmethod
    def detect(cls, path: str, magic: Magic) -> str | None:
        if magic in (Magic.JPEG, Magic.PNG, Magic.KFB, Magic.SDPC, Magic.TMAP, Magic.EMPTY, Magic.TEXT):
            return None
        return openslide.OpenSlide.detect_format(path)

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple(self.slide.level_dimensions)

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return tuple(self.slide.level_downsamples)

    @property
    def dimensions(self) -> tuple[int, int]:
        return self.slide.dimensions

    @property
    def level_count(self) -> int:
        return self.slide.level_count

    def get_best_level_for_downsample(self, downsample: float) -> int:
        return self.slide.get_best_level_for_downsample(downsample)

    @property
    def properties(self) -> Mapping[str, str]:
        return self.slide.properties

    @property
    def associated_images(self) -> Mapping[str, Image.Image]:
        return self.slide.associated_images

    @property
    def color_profile(self) -> Any:
        return self.slide.color_profile

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> Image.Image:
        return self.slide.read_region(location, level, size)

    def read_rgb(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        ds = self.slide.level_downsamples[level]
        region = self.slide.read_region((round(x * ds), round(y * ds)), level, (w, h))
        img = Image.new("RGB", region.size, "#" + self.background)
        img.paste(region, mask=region)
        return np.asarray(img)

    def native_level0(self, background: tuple[int, int, int]) -> Any:
        """Aperio and generic tiled TIFF with JPEG tiles: decode them directly (see .tiff.DirectJpeg)."""
        from .tiff import DirectJpeg

        return DirectJpeg.try_open(self.path, self.properties.get(VENDOR), self.dimensions, background)

    def get_thumbnail(self, size: tuple[int, int]) -> Image.Image:
        level, _ = thumbnail_level(self, size)
        lw, lh = self.level_dimensions[level]
        if lw * lh > THUMBNAIL_WHOLE_PIXELS:  # OpenSlide would read the whole level at once
            return bounded_thumbnail(self, size)
        return self.slide.get_thumbnail(size).convert("RGB")

    def close(self) -> None:
        self.slide.close()
