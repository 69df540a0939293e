"""Turning slide pixels into Deep Zoom JPEG tiles.

Tiles must match what openslide-python's DeepZoomGenerator shows for the same
address (pathologists compare them with other viewers) within JPEG error:

* full resolution: the level-0 pixels themselves;
* a downsample served by one of the slide's own (scanner) levels that is an exact 2^k
  downsample: its tiles at depth k are plain level pixels, read once per block
  (DeepZoomGenerator re-reads them per tile and per depth), and deeper levels box-reduce that
  read like the level-0 chain. A coarse level served by a small scanner level (up to
  COARSE_WHOLE_PIXELS) reads that level once, whole, from its origin, which also makes
  Aperio's rounded levels (2,221 px under 4,443 px: "2.0005") whole-pixel 2^k levels;
* a fine level whose scanner level is fractional: the block's level-0 pixels box-reduced
  (DeepZoomGenerator's per-tile reads of such a level decode each file tile up to four times);
  a coarse one on a large slide: DeepZoomGenerator's own tile;
* a 2^d downsample the slide has no level for: DeepZoomGenerator's ``thumbnail(LANCZOS)``
  box-reduces by 2^(d-1) and applies LANCZOS for the last 2x. We box-reduce all the way,
  once per block (2x2 means on an even grid, so a tile is still a pure function of its
  own footprint). Against LANCZOS that is ~50 dB PSNR before encoding (median; min ~47),
  far inside the JPEG Q80 error of ~38 dB, while the per-tile LANCZOS was half of all
  tiling CPU (5 ms per tile against 0.03 ms for its share of the block reduce);
* a tile clipped by the image edge: DeepZoomGenerator's resampling of its footprint
  (fractional edge boxes that the shared chain cannot mimic).

A tile rendered alone on demand is therefore byte-identical to the same tile
rendered inside a block by the pipeline.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Iterator

import imagecodecs
import numpy as np
from PIL import Image

from pathology_hub.slides.readers.parallel import thread_map

from .blank import is_blank
from .errors import TileNotFound
from . import direct_tiles
from .geometry import FINE_LEVELS
from .source import SlideSource

DEFAULT_QUALITY = 80

#: One rendered tile: (level, col, row, JPEG bytes or None for a blank tile).
TileEntry = tuple[int, int, int, "bytes | None"]


def encode_jpeg(arr: np.ndarray, quality: int) -> bytes:
    """libjpeg-turbo via imagecodecs (~4x faster than Pillow's save for a 256 px tile) with
    fixed settings: the same pixels always give the same bytes, which resume relies on."""
    return bytes(imagecodecs.jpeg8_encode(np.ascontiguousarray(arr), level=quality,
                                          subsampling=(2, 2), optimize=False))


def blank_jpeg(size: tuple[int, int], background: tuple[int, int, int], quality: int, grey: bool = False) -> bytes:
    w, h = size
    return encode_jpeg(np.full((h, w), background[0], np.uint8) if grey else np.full((h, w, 3), background, np.uint8),
                       quality)


#: Rows per strip of :func:`reduce2` (even, so no 2x2 box straddles two strips).
_REDUCE_ROWS = 512


def reduce2(arr: np.ndarray) -> np.ndarray:
    """2x2 box mean (partial boxes at the right/bottom edge average what exists).

    Pillow's reduce, a strip of rows at a time: on a whole 4096 x 4096 block, Pillow's RGBX copy
    and result (64 + 16 MB) came on top of the block's 48 MB in every worker. Each box lies
    inside one strip, so the result is byte-identical to one whole-image reduce."""
    h, w = arr.shape[:2]
    if h <= _REDUCE_ROWS:
        return np.asarray(Image.fromarray(np.ascontiguousarray(arr)).reduce(2))
    out = np.empty(((h + 1) // 2, (w + 1) // 2) + arr.shape[2:], arr.dtype)
    for y in range(0, h, _REDUCE_ROWS):
        strip = np.ascontiguousarray(arr[y:y + _REDUCE_ROWS])
        out[y // 2:(y + _REDUCE_ROWS) // 2] = np.asarray(Image.fromarray(strip).reduce(2))
    return out


def dzg_resample(footprint: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """DeepZoomGenerator's own resampling of a level-0 footprint, used for tiles clipped by the
    image edge, where its box step has fractional edges that the shared box chain cannot mimic."""
    img = Image.fromarray(footprint)
    img.thumbnail(size, Image.LANCZOS)
    if img.size != size:  # thumbnail() keeps the aspect ratio; the DZI promises this size
        img = img.resize(size, Image.LANCZOS)
    return np.asarray(img)


def _clipped(geom, level: int, col: int, row: int) -> tuple[int, int, int, int] | None:
    """The tile's level-0 footprint when the image edge cuts it, else None."""
    x, y, w, h = geom.tile_box(level, col, row)
    d = 1 << geom.depth(level)
    if (x + w) * d <= geom.width and (y + h) * d <= geom.height:
        return None
    return geom.tile_region_l0(level, col, row)


class _LevelChain:
    """One block's pixels at one source level (0 or an exact scanner level), box-reduced on demand."""

    def __init__(self, pixels: np.ndarray, depth: int, x0: int, y0: int) -> None:
        self.pixels, self.depth, self.x0, self.y0 = pixels, depth, x0, y0

    def at(self, depth: int) -> "_LevelChain":
        while self.depth < depth:
            self.pixels = reduce2(self.pixels)
            self.depth, self.x0, self.y0 = self.depth + 1, self.x0 // 2, self.y0 // 2
        return self

    def tile(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        return self.pixels[y - self.y0:y - self.y0 + h, x - self.x0:x - self.x0 + w]


def _exact_scanner(source: SlideSource, depth: int) -> tuple[int, int] | None:
    """(scanner level, k) when depth ``depth`` comes from an exact 2^k scanner level with k <= depth."""
    level = source.scanner_level(depth) if depth > 0 else 0
    if level <= 0:
        return None
    k = source.exact_shift(level)
    return (level, k) if k is not None and k <= depth else None


def _fine_from_l0(source: SlideSource, depth: int) -> bool:
    """Whether fine depth ``depth`` is box-reduced from the block's level-0 pixels.

    True unless an exact 2^k scanner level serves it. A fractional level (Aperio's 4,443 px wide
    level 0 over a 2,221 px level 1: downsample 2.0005) would mean DeepZoomGenerator's per-tile
    reads, which resample and decode each file tile up to four times (the TCGA JPEG 2000 slide:
    3.7 s of its 7 s). The block pass holds level 0 anyway, so reducing it costs a few ms, and it
    is what vips does for every level."""
    return depth == 0 or _exact_scanner(source, depth) is None


#: A coarse level (or the thumbnail) is rendered from the slide's own levels (DeepZoomGenerator,
#: available before the block pass, so the first view comes early) unless that would mean
#: re-reading a large level: DeepZoomGenerator reads the whole scanner level once per coarse level
#: (a single-level 16k x 12k TIFF: ten full-resolution reads, 178 s and 2.3 GB). Such levels are
#: built from the pixels the block pass already made instead, as vips does. "Large": more than
#: DERIVE_ABOVE_PIXELS, or more than DERIVE_FAR_PIXELS read 8x or more finer than needed, or read
#: at full resolution at all because the file has no smaller level (a 3000 x 2200 single-level
#: slide: 16 coarse tiles that each re-read the whole slide, 3.2 s to tile it before, 0.7 s now;
#: even a 600 x 400 one paid 0.17 s for its 7 coarse reads). A file's own small levels are still
#: read before the block pass, so a large multi-level slide keeps its early first view.
DERIVE_ABOVE_PIXELS = 64 * 1024 * 1024
DERIVE_FAR_PIXELS = 16 * 1024 * 1024


def _reads_too_much(source: SlideSource, depth: int) -> bool:
    """Whether DeepZoomGenerator would read too much to make a level at ``depth`` (see above)."""
    level = source.scanner_level(depth)
    geom = source.geometry
    k = 0 if level == 0 else source.exact_shift(level)
    if k is None:
        return False  # a fractional scanner level: only ever a small step from the wanted scale
    area = -(-geom.width >> k) * -(-geom.height >> k)
    return (area > DERIVE_ABOVE_PIXELS or (depth - k >= 3 and area > DERIVE_FAR_PIXELS)
            or level == 0 < depth)


def _one_block_of_area(source: SlideSource) -> bool:
    """Whether level 0 holds at most one block's worth of pixels (4096 x 4096). Its blocks decode
    all of it in a fraction of a second and the first view waits for them anyway (the build is
    one pass), so reading the scanner's own smaller levels too would only decode the same area
    twice: the TCGA JPEG 2000 slide spent 0.37 s of its 1 s on its level 1 alone. Not for a
    companion view (a fluorescence channel): its blocks come rendered with the composite, so its
    own build would decode level 0 only for these levels."""
    geom = source.geometry
    return (not getattr(source.slide, "companion_view", False)
            and geom.width * geom.height <= geom.block_span * geom.block_span)


def derived_levels(source: SlideSource) -> list[int]:
    """Coarse levels built from the block pass's pixels (as vips does), not from the slide's levels."""
    geom = source.geometry
    if _one_block_of_area(source):
        return list(geom.coarse_levels)
    return [level for level in geom.coarse_levels if _reads_too_much(source, geom.depth(level))]


def thumbnail_depth(source: SlideSource, max_size: int = 1024) -> int | None:
    """The depth whose pixels the thumbnail is made from when the slide has no small enough level
    of its own (None: ``source.thumbnail()`` reads one of the slide's levels cheaply)."""
    geom = source.geometry
    down = max(geom.width, geom.height) / max_size
    if down < 2:
        return None
    depth = int(down).bit_length() - 1  # floor(log2): that level is still >= max_size pixels
    if not _one_block_of_area(source) and not _reads_too_much(source, depth):
        return None
    return min(depth, FINE_LEVELS)


def mosaic_depth(source: SlideSource) -> int | None:
    """Depth of the overview every block contributes a piece of, or None when nothing needs one."""
    depths = []
    if derived_levels(source):
        depths.append(FINE_LEVELS)
    thumb = thumbnail_depth(source)
    if thumb is not None:
        depths.append(thumb)
    return min(depths) if depths else None


def block_piece_box(geom, bx: int, by: int, depth: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) at ``depth`` of block (bx, by)'s own area, without halo: the pieces of all
    blocks tile the level exactly (the block span is a multiple of 2^FINE_LEVELS)."""
    span = geom.block_span
    w, h = -(-geom.width >> depth), -(-geom.height >> depth)
    return ((bx * span) >> depth, (by * span) >> depth,
            min(w, ((bx + 1) * span) >> depth), min(h, ((by + 1) * span) >> depth))


def _piece(geom, chain: "_LevelChain", bx: int, by: int, depth: int) -> np.ndarray:
    x0, y0, x1, y1 = block_piece_box(geom, bx, by, min(depth, chain.depth))
    pixels = chain.tile(x0, y0, x1 - x0, y1 - y0)
    for _ in range(depth - chain.depth):
        pixels = reduce2(pixels)
    return np.ascontiguousarray(pixels)


def render_block(source: SlideSource, bx: int, by: int, quality: int,
                 piece: dict | None = None, piece_depth: int | None = None) -> Iterator[TileEntry]:
    """Every fine-level tile of level-0 block (bx, by), finest level first.

    With ``piece`` (a dict) and ``piece_depth``, ``piece["pixels"]`` receives the block's own area
    at that depth, made from the same pixels as its tiles, for the coarse levels and the thumbnail.
    """
    geom = source.geometry
    x0, y0, x1, y1 = geom.block_region(bx, by)
    full = direct_tiles.read_l0(source, x0, y0, x1, y1)
    # The block contains every pixel of every tile it yields, so an all-glass block
    # means all-glass tiles: skip the per-tile checks and the downsampling.
    all_blank = is_blank(full, source.background)
    chains: dict[int, _LevelChain] = {0: _LevelChain(full, 0, x0, y0)}
    want = piece is not None and piece_depth is not None
    for depth, level in enumerate(sorted(geom.fine_levels, reverse=True)):
        chain = None
        if not all_blank:
            scanner = _exact_scanner(source, depth)
            if scanner is not None:
                lv, k = scanner
                if lv not in chains:
                    chains[lv] = _LevelChain(direct_tiles.read_level(source, lv, k, x0 >> k, y0 >> k, -(-x1 >> k), -(-y1 >> k)),
                                             k, x0 >> k, y0 >> k)
                chain = chains[lv].at(depth)
            elif _fine_from_l0(source, depth):
                chain = chains[0].at(depth)
        if want and depth == min(piece_depth, FINE_LEVELS - 1):
            # Always the level-0 pixels box-reduced (one rule, so one tile on demand equals it).
            piece["pixels"] = _piece(geom, chains[0].at(depth), bx, by, piece_depth)
            want = False
        if all_blank:
            for col, row in geom.block_tiles(bx, by, level):
                yield level, col, row, None
            continue

        def make(address: tuple[int, int], level: int = level, depth: int = depth,
                 chain: "_LevelChain | None" = chain) -> TileEntry:
            col, row = address
            x, y, w, h = geom.tile_box(level, col, row)
            edge = _clipped(geom, level, col, row) if depth > 0 else None
            if edge is not None and _fine_from_l0(source, depth):
                ex0, ey0, ex1, ey1 = edge
                tile = dzg_resample(full[ey0 - y0:ey1 - y0, ex0 - x0:ex1 - x0], (w, h))
            elif chain is None or edge is not None:
                tile = source.coarse_tile(level, col, row)
            else:
                tile = chain.tile(x, y, w, h)
            native = (lambda: direct_tiles.native_jpeg(source, level, col, row)) if depth == 0 else None
            return _entry(level, col, row, tile, (w, h), source.background, quality, native)
        # Resampling and encoding release the GIL: a level's tiles are made on the threads.
        yield from thread_map(make, list(geom.block_tiles(bx, by, level)))
    if want:  # fewer fine levels than the piece's depth (cannot happen with coarse levels; kept safe)
        piece["pixels"] = _piece(geom, chains[0], bx, by, piece_depth)


def block_piece(source: SlideSource, bx: int, by: int, piece_depth: int) -> np.ndarray:
    """Only the piece of a block, as :func:`render_block` makes it (for a resumed build whose
    block packs exist but whose top pack does not)."""
    geom = source.geometry
    x0, y0, x1, y1 = geom.block_region(bx, by)
    chain = _LevelChain(direct_tiles.read_l0(source, x0, y0, x1, y1), 0, x0, y0).at(min(piece_depth, FINE_LEVELS - 1))
    return _piece(geom, chain, bx, by, piece_depth)


class Mosaic:
    """The whole slide at one depth, assembled from the blocks' pieces; the derived coarse levels
    and the thumbnail are box-reduced from it (a 100k x 100k slide: 3,125 x 3,125 x 3 = 29 MB)."""

    def __init__(self, source: SlideSource, depth: int) -> None:
        geom = source.geometry
        self.geom, self.depth, self.background = geom, depth, source.background
        w, h = -(-geom.width >> depth), -(-geom.height >> depth)
        self.pixels = np.empty((h, w) if source.grey else (h, w, 3), np.uint8)
        self.filled = 0

    def add(self, bx: int, by: int, pixels: np.ndarray) -> None:
        x0, y0, x1, y1 = block_piece_box(self.geom, bx, by, self.depth)
        if pixels.shape[:2] != (y1 - y0, x1 - x0):
            raise AssertionError(f"piece of block {bx},{by}: got {pixels.shape[:2]}, want {(y1 - y0, x1 - x0)}")
        self.pixels[y0:y1, x0:x1] = pixels
        self.filled += 1

    def chain(self) -> "_LevelChain":
        return _LevelChain(self.pixels, self.depth, 0, 0)


def _edge_resample(base: np.ndarray, origin: tuple[int, int], depth: int,
                   footprint: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """A derived tile cut by the image edge, as DeepZoomGenerator makes it: the clipped footprint
    stretched over the whole tile (LANCZOS), here from the footprint's pixels at ``depth``, whose
    last row/column is a partial box (so the source box is fractional). The box chain alone would
    leave that partial pixel where it is: up to 1 px of misregistration against other viewers."""
    fx0, fy0, fx1, fy1 = footprint
    sx0, sy0 = fx0 >> depth, fy0 >> depth
    sx1, sy1 = -(-fx1 >> depth), -(-fy1 >> depth)
    ox, oy = origin
    crop = base[sy0 - oy:sy1 - oy, sx0 - ox:sx1 - ox]
    box = (0.0, 0.0, (fx1 - fx0) / (1 << depth), (fy1 - fy0) / (1 << depth))
    # reducing_gap: a box reduce by a whole factor first, then LANCZOS, which is what DeepZoomGenerator's
    # thumbnail() does; LANCZOS alone over a 1,000x reduction to a level a few pixels across gave
    # other average colours (green 147 where DeepZoomGenerator shows 172).
    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize(size, Image.LANCZOS, box=box,
                                                                         reducing_gap=2.0))


def render_derived(chain: "_LevelChain", mosaic: "Mosaic", geom, level: int, quality: int,
                   background: tuple[int, int, int]) -> Iterator[TileEntry]:
    """Tiles of a derived coarse level, cut from the mosaic chain box-reduced to that level
    (tiles cut by the image edge: resampled from the mosaic as DeepZoomGenerator would)."""
    return _chain_level(chain, mosaic.pixels, mosaic.depth, geom, level, quality, background)


def _chain_level(chain: "_LevelChain", base: np.ndarray, base_depth: int, geom, level: int, quality: int,
                 background: tuple[int, int, int]) -> Iterator[TileEntry]:
    """Every tile of one level cut from ``chain`` box-reduced to it; tiles cut by the image edge are
    resampled from ``base``, the whole level at ``base_depth`` the chain started from."""
    chain.at(geom.depth(level))
    cols, rows = geom.level_tiles(level)

    def make(address: tuple[int, int]) -> TileEntry:
        col, row = address
        x, y, w, h = geom.tile_box(level, col, row)
        edge = _clipped(geom, level, col, row)
        if edge is None:
            tile = chain.tile(x, y, w, h)
        else:
            tile = _edge_resample(base, (0, 0), base_depth, edge, (w, h))
        return _entry(level, col, row, tile, (w, h), background, quality)
    yield from thread_map(make, [(col, row) for row in range(rows) for col in range(cols)])


def _entry(level: int, col: int, row: int, tile: np.ndarray, size: tuple[int, int],
           background: tuple[int, int, int], quality: int,
           native: Callable[[], bytes | None] | None = None) -> TileEntry:
    """The finished tile: None when blank, else the scanner's own JPEG of it if ``native`` gives one,
    else its JPEG; a wrong size is a geometry bug, never shipped."""
    w, h = size
    if tile.shape[:2] != (h, w):
        raise AssertionError(f"tile {level}/{col}_{row}: got {tile.shape[:2]}, want {(h, w)}")
    if is_blank(tile, background):
        return level, col, row, None
    return level, col, row, (native and native()) or encode_jpeg(tile, quality)


def _derived_tile_pixels(source: SlideSource, level: int, col: int, row: int) -> np.ndarray:
    """One derived coarse tile on demand: the level-0 footprint box-reduced, as the mosaic is
    (and, cut by the image edge, resampled from the mosaic's depth exactly as the pipeline does)."""
    geom = source.geometry
    _, _, w, h = geom.tile_box(level, col, row)
    footprint = geom.tile_region_l0(level, col, row)
    img = direct_tiles.read_l0(source, *footprint)
    edge = _clipped(geom, level, col, row)
    steps = geom.depth(level) if edge is None else mosaic_depth(source)
    for _ in range(steps):
        img = reduce2(img)
    if edge is None:
        return img[:h, :w]
    return _edge_resample(img, (footprint[0] >> steps, footprint[1] >> steps), steps, edge, (w, h))


#: An exact scanner level up to this many pixels (48 MB in RGB) is read once for all the coarse tiles
#: it serves and box-reduced, like the fine levels; DeepZoomGenerator re-reads it for every coarse
#: level (a DICOM series of 8,000 x 6,000: nine reads of its 4x level, 1.2 s of a 3.2 s build).
COARSE_WHOLE_PIXELS = 16 * 1024 * 1024


def _whole_scanner(source: SlideSource, depth: int) -> tuple[int, int] | None:
    """(scanner level, k) when coarse depth ``depth`` is made from the whole scanner level DeepZoomGenerator
    would read, as a 2^k downsample (:meth:`SlideSource.whole_shift`), and that level is small enough."""
    level = source.scanner_level(depth)
    k = source.whole_shift(level) if level > 0 else None
    if k is None or k > depth:
        return None
    geom = source.geometry
    return (level, k) if -(-geom.width >> k) * -(-geom.height >> k) <= COARSE_WHOLE_PIXELS else None


def render_scanner_coarse(source: SlideSource, levels: list[int], quality: int) -> Iterator[TileEntry]:
    """Tiles of those coarse ``levels`` that :func:`_whole_scanner` serves (the others are not
    yielded): one read per scanner level, then one box step per level, finest first; tiles cut by
    the image edge resampled from the level's pixels as DeepZoomGenerator resamples them."""
    geom = source.geometry
    groups: dict[tuple[int, int], list[int]] = {}
    for level in levels:
        scanner = _whole_scanner(source, geom.depth(level))
        if scanner is not None:
            groups.setdefault(scanner, []).append(level)
    for (lv, k), group in groups.items():
        base = direct_tiles.read_level(source, lv, k, 0, 0, -(-geom.width >> k), -(-geom.height >> k))
        chain = _LevelChain(base, k, 0, 0)
        for level in sorted(group, reverse=True):  # finest first: one box step each
            yield from _chain_level(chain, base, k, geom, level, quality, source.background)


def _scanner_coarse_pixels(source: SlideSource, level: int, col: int, row: int, lv: int, k: int) -> np.ndarray:
    """One tile of :func:`render_scanner_coarse` alone. A level that is not an exact 2^k downsample
    (Aperio's 2.0005) maps to whole pixels only when read from its origin, so it is read from there."""
    geom = source.geometry
    _, _, w, h = geom.tile_box(level, col, row)
    fx0, fy0, fx1, fy1 = geom.tile_region_l0(level, col, row)
    ox, oy = (fx0 >> k, fy0 >> k) if source.exact_shift(lv) == k else (0, 0)
    img = direct_tiles.read_level(source, lv, k, ox, oy, -(-fx1 >> k), -(-fy1 >> k))
    edge = _clipped(geom, level, col, row)
    if edge is not None:
        return _edge_resample(img, (ox, oy), k, edge, (w, h))
    img = img[(fy0 >> k) - oy:, (fx0 >> k) - ox:]
    for _ in range(geom.depth(level) - k):
        img = reduce2(img)
    return img[:h, :w]


def render_coarse(source: SlideSource, level: int, col: int, row: int, quality: int) -> bytes | None:
    tile = source.coarse_tile(level, col, row)
    return None if is_blank(tile, source.background) else encode_jpeg(tile, quality)


def tile_pixels(source: SlideSource, level: int, col: int, row: int) -> np.ndarray:
    """The sRGB pixels of one tile before JPEG encoding (the pipeline encodes exactly these)."""
    geom = source.geometry
    try:
        _, _, w, h = geom.tile_box(level, col, row)
    except IndexError as exc:
        raise TileNotFound(str(exc)) from None
    depth = geom.depth(level)
    if level in geom.coarse_levels:
        if level in derived_levels(source):
            return _derived_tile_pixels(source, level, col, row)
        whole = _whole_scanner(source, depth)
        if whole is None:
            return source.coarse_tile(level, col, row)
        return _scanner_coarse_pixels(source, level, col, row, *whole)
    if not _fine_from_l0(source, depth):
        if _clipped(geom, level, col, row) is not None:
            return source.coarse_tile(level, col, row)
        lv, k = _exact_scanner(source, depth)
        fx0, fy0, fx1, fy1 = geom.tile_region_l0(level, col, row)
        img = direct_tiles.read_level(source, lv, k, fx0 >> k, fy0 >> k, fx1 >> k, fy1 >> k)
        for _ in range(depth - k):
            img = reduce2(img)
        return img[:h, :w]
    img = direct_tiles.read_l0(source, *geom.tile_region_l0(level, col, row))
    if depth == 0:
        return img[:h, :w]
    if _clipped(geom, level, col, row) is not None:
        return dzg_resample(img, (w, h))
    for _ in range(depth):
        img = reduce2(img)
    return img[:h, :w]


def render_tile_from(source: SlideSource, level: int, col: int, row: int, quality: int) -> bytes:
    """One tile, exactly as the pipeline stores it (blank tiles as the shared blank JPEG)."""
    img = tile_pixels(source, level, col, row)
    if is_blank(img, source.background):
        return blank_jpeg((img.shape[1], img.shape[0]), source.background, quality, source.grey)
    return direct_tiles.native_jpeg(source, level, col, row) or encode_jpeg(img, quality)


_sources: "OrderedDict[tuple[str, float], SlideSource]" = OrderedDict()
_sources_lock = threading.Lock()


def _cached_source(slide_path: str) -> SlideSource:
    """Opening a slide costs milliseconds; the viewer asks for many tiles of the same one."""
    import os
    key = (os.path.abspath(slide_path), os.path.getmtime(slide_path))
    with _sources_lock:
        src = _sources.pop(key, None)
        if src is None:
            src = SlideSource(slide_path)
        _sources[key] = src
        while len(_sources) > 4:
            _sources.popitem(last=False)[1].close()
        return src


def render_tile(slide_path: str, level: int, col: int, row: int, quality: int = DEFAULT_QUALITY) -> bytes:
    """On-demand tile from the original file for a pyramid still being built."""
    from .layout import validate_address
    level, col, row = validate_address(level, col, row)
    src = _cached_source(slide_path)
    with _sources_lock:  # tifffile page decoding and the DeepZoomGenerator are not shared safely
        return render_tile_from(src, level, col, row, quality)
