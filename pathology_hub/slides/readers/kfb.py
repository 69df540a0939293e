"""KFBio (江丰生物) ``.kfb`` slides, read with the pure-Python ``kfbslide`` package.

Detection is the signature KFBio's own reader checks: ``KFB`` at byte 4, inside the first
header section. ``kfbslide`` already speaks OpenSlide's API and reports ``openslide.mpp-*``
and the scan magnification from the file header, so this is a thin wrapper; like every
decoder it only runs inside the sandboxed probe and the tiling workers.
"""

from __future__ import annotations

from typing import Mapping

import kfbslide
from PIL import Image

from ..identify import Magic
from .base import SlideReader

LABEL = "KFBio KFB"


class KfbReader(SlideReader):
    name = "kfb"
    errors = (kfbslide.OpenSlideError, ValueError, OSError, KeyError, IndexError)

    def __init__(self, path: str, fmt: str | None = None) -> None:
        self.path = path
        self.format = "kfbio"
        self.slide = kfbslide.OpenSlide(path)
        if not self.slide.level_count:
            raise kfbslide.OpenSlideError("the file's tile index lists no pyramid level")

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

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> Image.Image:
        return self.slide.read_region(location, level, size)

    def close(self) -> None:
        self.slide.close()
