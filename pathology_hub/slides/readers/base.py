"""The one interface every slide format is read through.

Like large_image's tile sources, each format family is one class that says how it
recognises its files (:meth:`SlideReader.detect`), opens them, reports metadata
(:meth:`SlideReader.describe`), hands out associated images and reads regions. The
shape is OpenSlide's (``level_dimensions``, ``read_region`` returning RGBA...), on
purpose: openslide's DeepZoomGenerator, the quality check and the probe then drive
every reader the same way, and a new format only has to answer these questions.

Readers run where native or untrusted decoding is allowed: inside the sandboxed probe
and in the tiling workers, never in the web process.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Mapping

import numpy as np
from PIL import Image

from ..identify import Magic

#: OpenSlide's standard property names; every reader reports its facts under them so that
#: metadata, bounds and background colour are read the same way whatever the format.
VENDOR = "openslide.vendor"
MPP_X = "openslide.mpp-x"
MPP_Y = "openslide.mpp-y"
OBJECTIVE_POWER = "openslide.objective-power"
BACKGROUND_COLOR = "openslide.background-color"


class ReaderError(Exception):
    """A reader recognised the file but cannot read it; the text is the library's reason."""


class SlideReader(abc.ABC):
    """One open slide. Subclasses set the class attributes and implement the abstract members."""

    #: Registry key, reported as the tiling source's ``reader_kind``.
    name: ClassVar[str]
    #: Exceptions of the underlying library that mean "this file cannot be read".
    errors: ClassVar[tuple[type[BaseException], ...]] = (ReaderError,)

    #: One grey sample per pixel (a fluorescence channel): pyramids of it are tiled as one-component
    #: JPEG, a third of the pixels to resample and check, and no colour to invent.
    grey: ClassVar[bool] = False

    #: :meth:`read_region` may run on several threads at once, each reading its own region (the
    #: library is thread-safe and releases the GIL). The tiling source then reads a large region
    #: as strips in parallel instead of on one core.
    concurrent_reads: ClassVar[bool] = False

    #: A view of another reader's pixels (one channel of a fluorescence file) whose blocks are
    #: rendered with that reader's, from the data it decoded (``build_pyramid(companions=...)``):
    #: its own build finds them stored and should not decode its full resolution again.
    companion_view: ClassVar[bool] = False

    path: str
    #: The detected format (OpenSlide's detect_format value, "kfbio", "dicom"...).
    format: str

    # ------------------------------------------------------------------ detection
    @classmethod
    @abc.abstractmethod
    def detect(cls, path: str, magic: Magic) -> str | None:
        """The format name when this reader claims the file, else None. Must be cheap."""

    # ------------------------------------------------------------------ geometry
    @property
    @abc.abstractmethod
    def level_dimensions(self) -> tuple[tuple[int, int], ...]: ...

    @property
    @abc.abstractmethod
    def level_downsamples(self) -> tuple[float, ...]: ...

    @property
    def dimensions(self) -> tuple[int, int]:
        return self.level_dimensions[0]

    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)

    def get_best_level_for_downsample(self, downsample: float) -> int:
        """The finest level at most ``downsample`` coarser than level 0 (OpenSlide's rule)."""
        best = 0
        for level, ds in enumerate(self.level_downsamples):
            if ds <= downsample * 1.0001:
                best = level
        return best

    # ------------------------------------------------------------------ metadata
    @property
    @abc.abstractmethod
    def properties(self) -> Mapping[str, str]:
        """Vendor facts under OpenSlide's standard names (see the constants above)."""

    @property
    def associated_images(self) -> Mapping[str, Image.Image]:
        """Label, macro, thumbnail... by name."""
        return {}

    @property
    def color_profile(self) -> Any:
        """An ImageCms profile of the pixels, or None for sRGB."""
        return None

    @property
    def background(self) -> str:
        """The colour of empty areas as "RRGGBB"."""
        return str(self.properties.get(BACKGROUND_COLOR) or "ffffff")

    def describe(self, facts: Any = None) -> Any:
        """A :class:`~pathology_hub.slides.metadata.SlideDescription` of this slide."""
        from ..metadata import describe_openslide

        return describe_openslide(self, self.format, facts)

    # ------------------------------------------------------------------ pixels
    @abc.abstractmethod
    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> Image.Image:
        """RGBA pixels of ``size`` at ``level``; ``location`` in level-0 coordinates (OpenSlide's contract)."""

    def read_rgb(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """(h, w, 3) uint8 pixels at ``level`` from level coordinates (x, y), on the background colour."""
        ds = self.level_downsamples[level]
        region = self.read_region((round(x * ds), round(y * ds)), level, (w, h))
        img = Image.new("RGB", region.size, "#" + self.background)
        img.paste(region, mask=region if region.mode == "RGBA" else None)
        return np.asarray(img)

    def native_level0(self, background: tuple[int, int, int]) -> Any:
        """A decoder of level 0's own tiles when the layout allows one (``read(x0, y0, x1, y1)`` ->
        RGB array, ``close()``), else None. Formats without a faster path than read_region keep None."""
        return None

    def get_thumbnail(self, size: tuple[int, int]) -> Image.Image:
        """The whole slide fitted into ``size`` (from the coarsest level that is large enough)."""
        return bounded_thumbnail(self, size)

    def close(self) -> None:
        """Release files and handles."""

    def __enter__(self) -> "SlideReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: A level read whole for a thumbnail up to this many pixels; a larger one (a file without small
#: levels) is read block by block and box-reduced on the way, so its memory stays bounded.
THUMBNAIL_WHOLE_PIXELS = 16 * 1024 * 1024
THUMBNAIL_BLOCK = 4096


def thumbnail_level(reader: SlideReader, size: tuple[int, int]) -> tuple[int, float]:
    """The level a thumbnail within ``size`` is made from, and how much smaller it must still get."""
    w, h = reader.dimensions
    down = max(w / size[0], h / size[1], 1.0)
    level = reader.get_best_level_for_downsample(down)
    return level, down / reader.level_downsamples[level]


def bounded_thumbnail(reader: SlideReader, size: tuple[int, int]) -> Image.Image:
    """The thumbnail without ever holding a large level whole.

    A single-level 20,000 x 15,000 slide read whole is 1.2 GB of RGBA before any copy: over the
    sandbox's 2 GB limit with the copies, so the file was rejected as "needing more memory than
    the safety limit". Here each 4096-pixel block is box-reduced by the whole factor at once.
    """
    level, rest = thumbnail_level(reader, size)
    lw, lh = reader.level_dimensions[level]
    if lw * lh <= THUMBNAIL_WHOLE_PIXELS or rest < 2:
        img = Image.fromarray(reader.read_rgb(level, 0, 0, lw, lh))
    else:
        k = int(rest)
        step = THUMBNAIL_BLOCK // k * k  # blocks are whole boxes, so the pieces tile the result
        img = Image.new("RGB", (-(-lw // k), -(-lh // k)))
        for y in range(0, lh, step):
            for x in range(0, lw, step):
                block = reader.read_rgb(level, x, y, min(step, lw - x), min(step, lh - y))
                img.paste(Image.fromarray(block).reduce(k), (x // k, y // k))
    img.thumbnail(size, Image.LANCZOS)
    return img
