"""Pixels of a slide's Deep Zoom area, in sRGB, as NumPy arrays, whatever its format.

The slide is opened through :mod:`pathology_hub.slides.readers` (one reader per format
family: OpenSlide, KFB, wsidicom, Pillow...); this class only adapts a reader to Deep Zoom
coordinates. OpenSlide's read_region costs 1.5-3.5 ms per 256 px tile; decoding the file's
own JPEG tiles costs ~0.2 ms. So level 0 of a tiled-JPEG TIFF (Aperio, generic TIFF) is
decoded directly (:class:`~pathology_hub.slides.readers.tiff.DirectJpeg`), and every other
format goes through its reader. Either way callers get the same thing: the pixels of the
bounds area (``limit_bounds=True`` coordinates), composited on the slide's background colour
and converted to sRGB with one ICC transform per slide, so tiles and thumbnail agree.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from openslide.deepzoom import DeepZoomGenerator
from PIL import Image, ImageCms

from pathology_hub.slides.errors import SlideRejected
from pathology_hub.slides.readers import ReaderError, SlideReader, open_reader
from pathology_hub.slides.readers.base import BACKGROUND_COLOR, VENDOR
from pathology_hub.slides.readers.parallel import thread_map
from pathology_hub.slides.readers.tiff import TileDecodeError

from .blank import parse_colour
from .errors import TilingError
from .geometry import OVERLAP, TILE_SIZE, Bounds, Geometry


def _open_slide(path: str) -> SlideReader:
    try:
        return open_reader(path)
    except ReaderError as exc:
        raise TilingError(f"not a slide format any reader can read: {os.path.basename(path)} ({exc})") from exc
    except (SlideRejected, OSError) as exc:
        raise TilingError(f"the slide file cannot be opened ({exc})") from exc


@functools.lru_cache(maxsize=1)
def _identity_grid() -> np.ndarray:
    """The colours :meth:`SlideSource.icc_is_identity` checks, as one image (made once per process):
    every level of each primary ramp and of the grey ramp, where a profile's tone curves act,
    and a 35^3 lattice of the cube (every 8th level and both ends), where its matrix or colour
    table acts. LittleCMS maps 8-bit RGB through tone curves and a matrix, or a table interpolated
    between nodes, so a transform that changes none of these has nothing left to change between
    them. The 67^3 lattice used before cost 7-9 ms a profile, as much as a small slide's build."""
    ramp = np.arange(256, dtype=np.uint8)
    zero = np.zeros(256, np.uint8)
    ramps = [np.stack(c, axis=-1) for c in ((ramp, zero, zero), (zero, ramp, zero), (zero, zero, ramp),
                                            (ramp, ramp, ramp))]
    v = np.array(sorted(set(range(0, 256, 8)) | {1, 254, 255}), np.uint8)
    lattice = np.stack(np.meshgrid(v, v, v, indexing="ij"), axis=-1).reshape(-1, 3)
    colours = np.concatenate([*ramps, lattice])
    width = 256
    rows = -(-len(colours) // width)
    grid = np.zeros((rows * width, 3), np.uint8)
    grid[:len(colours)] = colours
    grid = grid.reshape(rows, width, 3)
    grid.setflags(write=False)
    return grid


@dataclass
class _Profile:
    """What one ICC profile's sRGB conversion costs to learn, learnt once per process (a scanner's
    embedded profile comes with every slide it makes): the transform (~2 ms to build, a tenth of a
    small slide's build) and whether it changes any colour (1-2 ms to check, None until asked). A
    LittleCMS transform holds no per-call state, so every thread of the process applies the same."""
    transform: Any
    identity: bool | None = None


#: :class:`_Profile` by the SHA-256 of the profile's bytes.
_PROFILES: dict[bytes, _Profile] = {}

#: Profiles remembered per process: a worker sees a few scanners, not thousands.
_PROFILE_CACHE = 64


#: Rows per strip of a threaded colour conversion.
_SRGB_ROWS = 512

#: Rows per strip of a large level-0 read from a reader that allows concurrent reads.
_READ_ROWS = 512


class SlideSource:
    """One open slide, ready to hand out Deep Zoom pixels. Open once per process."""

    def __init__(self, path: str | os.PathLike[str], *, direct: bool = True) -> None:
        self.path = os.fspath(path)
        self.slide = _open_slide(self.path)
        props = self.slide.properties
        self.bounds = Bounds.from_properties(props, self.slide.dimensions)
        self.geometry = Geometry(self.bounds.width, self.bounds.height, TILE_SIZE, OVERLAP)
        self.background = parse_colour(props.get(BACKGROUND_COLOR))
        self.vendor = props.get(VENDOR, "unknown")
        #: Tiles hold one grey sample per pixel (:attr:`SlideReader.grey`); every array is (h, w).
        self.grey = bool(getattr(self.slide, "grey", False))
        self._errors: tuple[type[BaseException], ...] = (*self.slide.errors, ReaderError)
        self._profile = self._srgb_profile()
        self._direct = self.slide.native_level0(self.background) if direct else None
        self._dz: DeepZoomGenerator | None = None
        self._thumbnail_read: Image.Image | None = None

    @property
    def reader_kind(self) -> str:
        """jpeg-direct on the fast JPEG path, else the reader's name: openslide, kfb, wsidicom, channels
        or photo (a reader's own level-0 path that is not JPEG decoding names itself)."""
        if self._direct is None:
            return self.slide.name
        return getattr(self._direct, "kind", "jpeg-direct")

    @property
    def icc(self) -> bool:
        return self._profile is not None

    def _srgb_profile(self) -> _Profile | None:
        """The slide's ICC profile as a :class:`_Profile`, shared with every slide of the process
        that carries the same profile; None when the slide declares none (sRGB)."""
        try:
            profile = self.slide.color_profile
        except Exception:  # noqa: BLE001
            profile = None
        if profile is None:
            return None
        try:
            key: bytes | None = hashlib.sha256(profile.tobytes()).digest()
        except Exception:  # noqa: BLE001 - no bytes to key the cache by: this slide's own record
            key = None
        known = _PROFILES.get(key) if key is not None else None
        if known is not None:
            return known
        try:
            known = _Profile(ImageCms.buildTransform(profile, ImageCms.createProfile("sRGB"), "RGB", "RGB"))
        except ImageCms.PyCMSError as exc:
            raise TilingError(f"the slide's ICC colour profile is unusable ({exc})") from exc
        if key is not None:
            if len(_PROFILES) >= _PROFILE_CACHE:
                _PROFILES.clear()
            _PROFILES[key] = known
        return known

    def to_srgb(self, img: Image.Image) -> Image.Image:
        if self._profile is not None:
            img = ImageCms.applyTransform(img, self._profile.transform)
        return img

    def icc_is_identity(self) -> bool:
        """Whether the slide's ICC transform leaves every sampled colour unchanged (an embedded sRGB
        profile, as DICOM WSI files commonly carry): then applying it - 1.3 s per 4096 x 4096 block,
        more than decoding - is skipped. Every colour of :func:`_identity_grid` must map to itself
        exactly; any difference keeps the transform. A slide without a profile has nothing to change."""
        if self._profile is None:
            return True
        if self._profile.identity is None:
            grid = _identity_grid()
            self._profile.identity = bool(np.array_equal(np.asarray(self.to_srgb(Image.fromarray(grid))), grid))
        return self._profile.identity

    @property
    def needs_srgb(self) -> bool:
        """Whether pixels read from the slide must go through its ICC transform (one that exists and
        changes something): the one test every read path uses before converting."""
        return not self.icc_is_identity()

    def srgb_array(self, img: Image.Image) -> np.ndarray:
        """``img`` (RGB) in sRGB as an array, without the transform when it changes nothing; a grey
        slide's reads (equal R, G and B) as its one sample."""
        arr = self.srgb_pixels(np.asarray(img))
        return np.ascontiguousarray(arr[..., 0]) if self.grey else arr

    def srgb_pixels(self, arr: np.ndarray) -> np.ndarray:
        """:meth:`srgb_array` for pixels already in an array (no copy when nothing changes). A large
        array is converted in strips of rows on the process's threads (LittleCMS releases the GIL
        and converts each pixel on its own, so the split changes no byte): 0.47 s of one core per
        4096 x 4096 block otherwise, a third of a small JPEG 2000 slide's build."""
        if not self.needs_srgb:
            return arr
        if arr.shape[0] < 2 * _SRGB_ROWS:
            return np.asarray(self.to_srgb(Image.fromarray(arr)))
        out = np.empty_like(arr)

        def strip(y: int) -> None:
            out[y:y + _SRGB_ROWS] = np.asarray(self.to_srgb(Image.fromarray(arr[y:y + _SRGB_ROWS])))
        thread_map(strip, range(0, arr.shape[0], _SRGB_ROWS))
        return out

    def read_l0(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Full-resolution pixels of [x0, x1) x [y0, y1) in Deep Zoom (bounds-relative) coordinates."""
        bx, by = self.bounds.x, self.bounds.y
        if self._direct is not None:
            try:
                arr = self._direct.read(x0 + bx, y0 + by, x1 + bx, y1 + by)
            except TileDecodeError as exc:
                raise TilingError(str(exc)) from exc
            return self.srgb_pixels(arr)
        if not self.slide.concurrent_reads or y1 - y0 < 2 * _READ_ROWS:
            return self._read_composited(x0 + bx, y0 + by, x1 - x0, y1 - y0)
        # One library call decodes on one core (a 4096 x 4096 NDPI block: 0.49 s, the other core
        # idle). Level-0 pixels do not depend on how the area is split: strips read in parallel
        # give the same bytes.
        first = self._read_composited(x0 + bx, y0 + by, x1 - x0, _READ_ROWS)
        out = np.empty((y1 - y0, *first.shape[1:]), first.dtype)
        out[:_READ_ROWS] = first

        def strip(y: int) -> None:
            out[y - y0:y - y0 + _READ_ROWS] = self._read_composited(x0 + bx, y + by, x1 - x0,
                                                                   min(_READ_ROWS, y1 - y))
        thread_map(strip, range(y0 + _READ_ROWS, y1, _READ_ROWS))
        return out

    def _read_composited(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Level-0 pixels of the reader's region (x, y, w, h), on the background, in sRGB."""
        return self.srgb_array(self._region((x, y), 0, (w, h)))

    def _region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> Image.Image:
        """The reader's region composited on the background (RGB) as DeepZoomGenerator does."""
        try:
            region = self.slide.read_region(location, level, size)
        except self._errors as exc:
            raise TilingError(f"the slide's pixels cannot be read ({exc})") from exc
        img = Image.new("RGB", region.size, self.background)
        img.paste(region, mask=region)
        return img

    def scanner_level(self, depth: int) -> int:
        """The slide level DeepZoomGenerator reads for a 2^depth downsample (0 = full resolution)."""
        return self.slide.get_best_level_for_downsample(float(1 << depth))

    def exact_shift(self, level: int) -> int | None:
        """k when scanner ``level`` is exactly a 2^k downsample on the bounds' grid, else None.

        Then DeepZoomGenerator's tiles at depth k are that level's pixels at integer positions,
        so one read of a whole block at that level gives every one of them; any other level
        (fractional downsample, odd bounds offset) keeps DeepZoomGenerator's per-tile reads.
        """
        ds = self.slide.level_downsamples[level]
        if level <= 0 or ds < 2:
            return None
        k = round(math.log2(ds))
        if ds != float(1 << k) or self.bounds.x % (1 << k) or self.bounds.y % (1 << k):
            return None
        return k

    def whole_shift(self, level: int) -> int | None:
        """k when scanner ``level`` read whole from its origin is a 2^k downsample: an exact one, or
        one whose size is level 0's halved k times and rounded (Aperio's 4,443 px over 2,221 px,
        reported as 2.0005). Read from (0, 0), such a level gives its own pixels; elsewhere OpenSlide
        would place the region at a fractional position. Its pixels are off by at most half a level
        pixel at the far edge, nothing at the coarse levels it serves (1/32 of a tile pixel and less)."""
        exact = self.exact_shift(level)
        if exact is not None or level <= 0 or self.bounds.x or self.bounds.y:
            return exact
        ds = self.slide.level_downsamples[level]
        k = round(math.log2(ds)) if ds >= 2 else 0
        if k < 1 or abs(ds - (1 << k)) > 0.01 * (1 << k):
            return None
        (w0, h0), (lw, lh) = self.slide.dimensions, self.slide.level_dimensions[level]
        if lw not in (w0 >> k, -(-w0 >> k)) or lh not in (h0 >> k, -(-h0 >> k)):
            return None
        return k

    def read_level(self, level: int, shift: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Scanner ``level`` (a 2^shift downsample) pixels of [x0, x1) x [y0, y1) in that level's
        Deep Zoom coordinates, composited on the background as DeepZoomGenerator does."""
        location = ((x0 << shift) + self.bounds.x, (y0 << shift) + self.bounds.y)
        img = self._region(location, level, (x1 - x0, y1 - y0))
        self.remember_level_read(level, shift, x0, y0, x1, y1, img)
        return self.srgb_array(img)

    def remember_level_read(self, level: int, shift: int, x0: int, y0: int, x1: int, y1: int,
                            pixels: Image.Image | np.ndarray) -> None:
        """Keep a whole read of the thumbnail's scanner level (RGB, before the sRGB transform) for
        :meth:`thumbnail`: the coarse levels read it whole, the thumbnail reuses it."""
        whole = (x0, y0) == (0, 0) and x1 << shift >= self.bounds.width and y1 << shift >= self.bounds.height
        if whole and level == self._thumbnail_level():
            self._thumbnail_read = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)

    def coarse_tile(self, level: int, col: int, row: int) -> np.ndarray:
        """A low-resolution tile exactly as DeepZoomGenerator renders it (from the slide's own levels)."""
        if self._dz is None:
            self._dz = DeepZoomGenerator(self.slide, TILE_SIZE, OVERLAP, limit_bounds=True)
        try:
            tile = self._dz.get_tile(level, (col, row))
        except self._errors as exc:
            raise TilingError(f"the slide's pixels cannot be read ({exc})") from exc
        _, _, w, h = self.geometry.tile_box(level, col, row)
        if tile.size != (w, h):
            # DeepZoomGenerator scales with thumbnail(), which keeps the aspect ratio and can
            # come out a pixel short on thin tiles; the DZI promises exact sizes.
            tile = tile.resize((w, h), Image.LANCZOS)
        return self.srgb_array(tile.convert("RGB"))

    def _thumbnail_level(self, max_size: int = 1024) -> int:
        b = self.bounds
        return self.slide.get_best_level_for_downsample(max(max(b.width, b.height) / max_size, 1.0))

    def thumbnail(self, max_size: int = 1024) -> Image.Image:
        """Overview of the bounds area, colour-converted like the tiles. When :meth:`read_level`
        has just read that scanner level whole from the bounds' origin (the coarse levels of a
        small slide), those pixels are used instead of a second read: the same pixels, read
        once (0.4 s of JPEG 2000 decoding on the TCGA slide)."""
        b = self.bounds
        level = self._thumbnail_level(max_size)
        ld = self.slide.level_downsamples[level]
        size = (max(1, math.ceil(b.width / ld)), max(1, math.ceil(b.height / ld)))
        cached, self._thumbnail_read = self._thumbnail_read, None
        if cached is not None and cached.size[0] >= size[0] and cached.size[1] >= size[1]:
            img = cached.crop((0, 0, *size))
        else:
            img = self._region((b.x, b.y), level, size)
        img.thumbnail((max_size, max_size), Image.LANCZOS)
        return self.to_srgb(img)

    def associated(self) -> dict[str, Image.Image]:
        out = {}
        for name, img in self.slide.associated_images.items():
            rgb = Image.new("RGB", img.size, (255, 255, 255))
            rgb.paste(img, mask=img if img.mode == "RGBA" else None)
            out[name] = rgb
        return out

    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
        self.slide.close()


def encode_png(img: Image.Image) -> bytes:
    """Lossless (a label's barcode must stay readable) but fast: zlib level 1 is ~4x quicker than
    Pillow's default 6 for files ~10% larger, and a small slide's label, macro and thumbnail cost
    0.3 s at level 6, a quarter of its whole build."""
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=False, compress_level=1)
    return buf.getvalue()
