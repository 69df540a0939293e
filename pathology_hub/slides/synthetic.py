"""Synthetic Aperio-like slides for tests, demos and benchmarks.

Real scans are large and licence-encumbered, so tests and the benchmark make
their own: a pyramidal JPEG-tiled TIFF whose first ImageDescription starts with
``Aperio Image Library`` so OpenSlide opens it with vendor ``aperio`` - the same
code path a real SVS takes. Pixels are generated tile by tile from a smooth
tissue field and a few pre-rendered texture patches, so a 100,000 x 100,000
slide never has to exist in memory and 40k x 30k takes seconds, not minutes.
Every pyramid level is rendered from the same field at its own scale, so lower
levels are (close to) box-downsampled versions of level 0, as a scanner's are.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np
import tifffile
from PIL import Image, ImageDraw, ImageFilter

_APERIO = "Aperio Image Library v12.0.15"
_TEXTURE = 512  # texture period in level-0 pixels; lower levels use it downscaled


def _texture(rng: np.random.Generator) -> np.ndarray:
    """One H&E-like patch: pink stroma with purple nuclei, seamless enough when tiled."""
    size = _TEXTURE
    noise = rng.random((size // 16, size // 16)).astype(np.float32)
    smooth = np.asarray(Image.fromarray(noise, "F").resize((size, size), Image.BICUBIC))
    smooth = np.clip(smooth, 0.0, 1.0)[..., None]
    pink = np.array([236, 160, 200], np.float32)
    dark_pink = np.array([205, 110, 165], np.float32)
    base = pink * (1 - smooth) + dark_pink * smooth
    img = Image.fromarray(base.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(220):
        x, y = rng.integers(0, size, 2)
        r = int(rng.integers(3, 8))
        shade = int(rng.integers(0, 50))
        for dx in (-size, 0, size):  # wrap around so the patch tiles without seams
            for dy in (-size, 0, size):
                draw.ellipse((x + dx - r, y + dy - r, x + dx + r, y + dy + int(r * 1.3)),
                             fill=(90 + shade, 50 + shade, 140 + shade))
    img = img.filter(ImageFilter.GaussianBlur(0.7))
    return np.asarray(img, np.uint8)


class _Generator:
    """Renders any tile of any level from the shared tissue field and texture."""

    def __init__(self, width: int, height: int, tissue_fraction: float, seed: int, tile: int,
                 max_down: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.tile = tile
        self.texture = _texture(rng)
        # The field is a coarse random grid, smoothly upsampled: ~6 blobs across the slide.
        self.scale = max(8, int(max(width, height) / 256))  # level-0 px per field px
        fw, fh = math.ceil(width / self.scale) + 1, math.ceil(height / self.scale) + 1
        pad = math.ceil(tile * max_down / self.scale) + 2  # edge tiles reach past the slide
        grid = rng.random((max(3, fh * 8 // 256 + 3), max(3, fw * 8 // 256 + 3))).astype(np.float32)
        field = np.asarray(Image.fromarray(grid, "F").resize((fw, fh), Image.BICUBIC))
        # Fade the border so tissue sits on glass like a real section.
        yy = np.minimum(np.arange(fh), np.arange(fh)[::-1]) / max(1, fh)
        xx = np.minimum(np.arange(fw), np.arange(fw)[::-1]) / max(1, fw)
        field = field * np.clip(np.minimum.outer(yy, xx) * 12, 0, 1)
        frac = min(max(tissue_fraction, 0.0), 1.0)
        self.threshold = float(np.quantile(field, 1 - frac)) if 0 < frac < 1 else (-1.0 if frac >= 1 else 9.0)
        field = np.pad(field, ((0, pad), (0, pad)))
        self.field = Image.fromarray(field.astype(np.float32), "F")
        self.field_arr = field
        self._textures: dict[int, np.ndarray] = {}
        self._white = np.full((tile, tile, 3), 255, np.uint8)

    def texture_at(self, down: int) -> np.ndarray:
        """The texture patch as it looks at downsample ``down`` (box-filtered like a scanner)."""
        if down not in self._textures:
            size = max(1, _TEXTURE // down)
            tex = Image.fromarray(self.texture).resize((size, size), Image.BOX)
            reps = math.ceil(self.tile / size) + 2
            self._textures[down] = np.tile(np.asarray(tex), (reps, reps, 1))
        return self._textures[down]

    def tile_at(self, down: int, tx: int, ty: int) -> np.ndarray:
        t = self.tile
        x0, y0 = tx * t * down / self.scale, ty * t * down / self.scale
        span = t * down / self.scale
        # Cheap rejection from the coarse field before any per-pixel work.
        fx0, fy0 = int(x0), int(y0)
        fx1, fy1 = int(math.ceil(x0 + span)) + 1, int(math.ceil(y0 + span)) + 1
        patch = self.field_arr[fy0:fy1, fx0:fx1]
        if patch.size == 0 or patch.max() < self.threshold:
            return self._white
        tex = self.texture_at(down)
        period = max(1, _TEXTURE // down)
        ox, oy = (tx * t) % period, (ty * t) % period
        tex_tile = tex[oy:oy + t, ox:ox + t]
        if patch.min() >= self.threshold:
            return tex_tile
        mask = np.asarray(self.field.resize((t, t), Image.BILINEAR, box=(x0, y0, x0 + span, y0 + span)))
        return np.where((mask >= self.threshold)[..., None], tex_tile, np.uint8(255))


def _level_sizes(width: int, height: int, levels: int | None) -> list[tuple[int, int, int]]:
    """(width, height, downsample) per level, 4x apart as Aperio scanners write them."""
    out = [(width, height, 1)]
    down = 1
    while (levels is None and max(width, height) // (down * 4) >= 1024) or (levels is not None and len(out) < levels):
        down *= 4
        out.append((max(1, width // down), max(1, height // down), down))
    return out


def write_synthetic_slide(path: str | Path, width: int, height: int, *, tile: int = 256,
                          mpp: float = 0.25, tissue_fraction: float = 0.45,
                          levels: int | None = None, seed: int = 0, jpeg_quality: int = 85,
                          bounds: tuple[int, int, int, int] | None = None) -> Path:
    """Write a pyramidal JPEG-tiled Aperio-style TIFF and return its path.

    ``levels`` forces the number of pyramid levels (default: down to ~1024 px).
    Aperio files cannot carry bounds, so ``bounds`` is rejected with a clear
    message rather than silently ignored.
    """
    if bounds is not None:
        raise ValueError("Aperio files carry no bounds; use a stub geometry instead")
    if width < 1 or height < 1:
        raise ValueError("width and height must be positive")
    path = Path(path)
    sizes = _level_sizes(width, height, levels)
    gen = _Generator(width, height, tissue_fraction, seed, tile, max_down=sizes[-1][2])
    mag = round(10 / mpp) if mpp else 40
    head = f"{width}x{height} [0,0 {width}x{height}] ({tile}x{tile})"

    def tiles(level_w: int, level_h: int, down: int) -> Iterator[np.ndarray]:
        for ty in range(math.ceil(level_h / tile)):
            for tx in range(math.ceil(level_w / tile)):
                yield gen.tile_at(down, tx, ty)

    opts = dict(tile=(tile, tile), compression="jpeg", compressionargs={"level": jpeg_quality},
                photometric="rgb", metadata=None, maxworkers=2)
    with tifffile.TiffWriter(path, bigtiff=width * height > 2**31) as tif:
        w0, h0, _ = sizes[0]
        tif.write(tiles(w0, h0, 1), shape=(h0, w0, 3), dtype=np.uint8,
                  description=f"{_APERIO}\r\n{head} JPEG/RGB Q={jpeg_quality}|AppMag = {mag}|"
                              f"MPP = {mpp}|ScanScope ID = SYNTHETIC",
                  resolution=(1e4 / mpp, 1e4 / mpp), resolutionunit="CENTIMETER", **opts)
        # Page 1 (stripped) is the thumbnail for OpenSlide's Aperio driver.
        thumb = _thumbnail(gen, sizes)
        tif.write(thumb, photometric="rgb", compression="jpeg", metadata=None,
                  description=f"{_APERIO}\r\n{width}x{height} -> {thumb.shape[1]}x{thumb.shape[0]} - ")
        for lw, lh, down in sizes[1:]:
            tif.write(tiles(lw, lh, down), shape=(lh, lw, 3), dtype=np.uint8,
                      description=f"{_APERIO}\r\n{head} -> {lw}x{lh} JPEG/RGB Q={jpeg_quality}", **opts)
        label = np.full((200, 300, 3), 250, np.uint8)
        label[60:140, 40:260] = (30, 30, 30)
        tif.write(label, photometric="rgb", compression="jpeg", metadata=None, subfiletype=1,
                  description=f"{_APERIO}\nlabel 300x200")
    return path


def _thumbnail(gen: _Generator, sizes: list[tuple[int, int, int]]) -> np.ndarray:
    """A small overview rendered from the field (cheap, and never the full image)."""
    w0, h0, _ = sizes[0]
    scale = max(1, math.ceil(max(w0, h0) / 768))
    tw, th = max(1, w0 // scale), max(1, h0 // scale)
    mask = np.asarray(gen.field.resize((tw, th), Image.BILINEAR, box=(0, 0, w0 / gen.scale, h0 / gen.scale)))
    colour = gen.texture.reshape(-1, 3).mean(0).astype(np.uint8)
    return np.where((mask >= gen.threshold)[..., None], colour, np.uint8(255)).astype(np.uint8)
