"""Microscope-camera photographs (JPEG, PNG, plain TIFF), read with Pillow.

A photo is one level with no label or macro and no trustworthy pixel size (camera DPI tags
describe print size). Pillow's decompression-bomb guard is turned into a hard refusal, and
sample layouts the viewer would show wrong (16-bit, grey + alpha) are refused with what was
found. The image is decoded once, whole: photos are bounded by ``max_pixels``.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

from PIL import Image

from ..errors import TOO_MANY_PIXELS, UNSUPPORTED_FORMAT, UNSUPPORTED_PIXELS, SlideRejected
from ..identify import PHOTO_CANDIDATES, Magic
from .base import SlideReader

#: Pillow format name -> the description's ``format``.
PHOTO_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "TIFF": "tiff"}
DEFAULT_MAX_PIXELS = 200_000_000


def open_image(path: str, max_pixels: int) -> Image.Image:
    """Open with Pillow's decompression-bomb guard turned into a hard error."""
    Image.MAX_IMAGE_PIXELS = max_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise SlideRejected(
                TOO_MANY_PIXELS,
                f"The image declares more than {max_pixels:,} pixels, the limit for "
                "photos; whole-slide scans must be uploaded in a slide format.",
            ) from None
    w, h = image.size
    if w * h > max_pixels:
        raise SlideRejected(
            TOO_MANY_PIXELS,
            f"The image has {w * h:,} pixels ({w} × {h}); the limit for photos is {max_pixels:,}.",
        )
    if image.format not in PHOTO_FORMATS:
        raise SlideRejected(UNSUPPORTED_FORMAT, f"{image.format} images are not accepted; use JPEG, PNG or TIFF.")
    return image


def refuse_unshowable(image: Image.Image) -> None:
    if image.mode.startswith(("I", "F")) or image.mode in ("LA", "La", "PA"):
        bits = 32 if image.mode in ("I", "F") else 16 if image.mode.startswith("I;16") else 8
        raise SlideRejected(
            UNSUPPORTED_PIXELS,
            f"The image stores {bits} bits per sample (image mode {image.mode}). The viewer shows 8-bit "
            "grey or RGB images only, so it would be displayed wrongly. Please export it as an 8-bit "
            "RGB JPEG, PNG or TIFF.",
            {"bits": bits, "samples": len(image.getbands())},
        )


def photo_thumbnail(path: str, max_pixels: int, size: tuple[int, int]) -> Image.Image:
    """A thumbnail without decoding the full photo (JPEG decodes at a reduced scale)."""
    image = open_image(path, max_pixels)
    image.draft("RGB", size)
    image = image.convert("RGB")
    image.thumbnail(size)
    return image


class PhotoReader(SlideReader):
    name = "photo"
    errors = (OSError, SyntaxError, ValueError)

    def __init__(self, path: str, fmt: str | None = None, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.path = path
        image = open_image(path, max_pixels)
        self.format = PHOTO_FORMATS[image.format]
        refuse_unshowable(image)
        image.load()  # decode everything: truncation and corrupt data show here
        self.image = image
        self._rgb: Image.Image | None = None

    @classmethod
    def detect(cls, path: str, magic: Magic) -> str | None:
        return magic.value if magic in PHOTO_CANDIDATES else None

    @property
    def rgb(self) -> Image.Image:
        if self._rgb is None:
            self._rgb = self.image.convert("RGB")
        return self._rgb

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return (self.image.size,)

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return (1.0,)

    @property
    def properties(self) -> Mapping[str, str]:
        return {"pillow.mode": self.image.mode, "pillow.format": self.image.format or self.format.upper()}

    def describe(self, facts: Any = None) -> Any:
        from ..metadata import describe_photo

        return describe_photo(self.image, self.format)

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> Image.Image:
        """OpenSlide's contract: areas outside the photo are transparent."""
        x, y = location
        w, h = self.image.size
        out = Image.new("RGBA", size, (0, 0, 0, 0))
        ix0, iy0, ix1, iy1 = max(x, 0), max(y, 0), min(x + size[0], w), min(y + size[1], h)
        if ix1 > ix0 and iy1 > iy0:
            out.paste(self.rgb.crop((ix0, iy0, ix1, iy1)), (ix0 - x, iy0 - y))
        return out

    def get_thumbnail(self, size: tuple[int, int]) -> Image.Image:
        img = self.rgb.copy()
        img.thumbnail(size)
        return img

    def close(self) -> None:
        self.image.close()
