"""IIIF Image API 3.0 at compliance level 0, answered from the stored Deep Zoom pyramid.

Level 0 means a client asks only for the tiles and sizes that ``info.json`` announces, so every
answer is one stored tile: no resampling, and no re-encoding where the pyramid's tiles have no
overlap (256 px, the layout of new pyramids, docs/tile-layout.md). A tile of an older pyramid
(254 px + 1 px overlap) is cropped to its own cell and re-encoded once.

Scale factor ``s`` (a power of two) is Deep Zoom level ``max_level - log2(s)``; the IIIF tile at
region ``x,y,w,h`` of that scale is Deep Zoom tile ``(x / (tile * s), y / (tile * s))``. ``sizes``
lists the whole image at the coarse levels whose image fits in one tile, which are single tiles too.
The whole image (region ``full``, size ``max`` or a listed size) is offered up to
:data:`MAX_WHOLE_SIDE` pixels a side (``maxWidth``/``maxHeight`` in info.json): it is the Deep Zoom
level of that size, composed from its few stored tiles and encoded once, which is cheap. Anything
else (arbitrary regions, rotation, other qualities or formats) is a level-1/2 feature: answered 501
or 400 as the specification says, with a stable error code.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

from PIL import Image

from ..tiling.geometry import Geometry
from .errors import DomainError

CONTEXT = "http://iiif.io/api/image/3/context.json"
PROTOCOL = "http://iiif.io/api/image"
#: JPEG quality of a cell cropped out of an overlapping tile (older pyramids only) and of a whole level.
REENCODE_QUALITY = 90
#: The whole image is served at Deep Zoom levels up to this many pixels a side (at most 8 x 8 tiles).
MAX_WHOLE_SIDE = 2048


class IiifBadRequest(DomainError):
    """Syntax the specification does not allow, or a request outside the image (400)."""
    status = 400
    code = "iiif_bad_request"


class IiifNotImplemented(DomainError):
    """Valid IIIF, but beyond compliance level 0 (501, as the specification asks)."""
    status = 501
    code = "iiif_not_supported"


@dataclass(frozen=True)
class TileRequest:
    """One stored tile: Deep Zoom ``level``, ``col``, ``row``, and its size in that level's pixels."""

    level: int
    col: int
    row: int
    width: int
    height: int
    #: the whole of ``level`` (composed from its tiles), not one tile
    whole: bool = False


def scale_factors(geometry: Geometry) -> list[int]:
    """Every power of two down to the level at which the whole image fits in one tile."""
    factors, s = [1], 1
    while max(math.ceil(geometry.width / s), math.ceil(geometry.height / s)) > geometry.tile_size:
        s *= 2
        factors.append(s)
    return factors


def _whole_levels(geometry: Geometry) -> list[int]:
    """Deep Zoom levels served whole: the image at most MAX_WHOLE_SIDE pixels a side."""
    return [lv for lv in range(geometry.level_count) if max(geometry.level_dimensions[lv]) <= MAX_WHOLE_SIDE]


def _sizes(geometry: Geometry) -> list[dict[str, int]]:
    """Whole-image sizes on offer, smallest first (IIIF orders ``sizes`` by ascending width)."""
    return [{"width": geometry.level_dimensions[lv][0], "height": geometry.level_dimensions[lv][1]}
            for lv in _whole_levels(geometry)]


def info(service_id: str, geometry: Geometry) -> dict[str, Any]:
    """The ``info.json`` document (Image API 3.0, level 0)."""
    return {
        "@context": CONTEXT,
        "id": service_id,
        "type": "ImageService3",
        "protocol": PROTOCOL,
        "profile": "level0",
        "width": geometry.width,
        "height": geometry.height,
        "tiles": [{"width": geometry.tile_size, "scaleFactors": scale_factors(geometry)}],
        "sizes": _sizes(geometry),
        "maxWidth": geometry.level_dimensions[_whole_levels(geometry)[-1]][0],
        "maxHeight": geometry.level_dimensions[_whole_levels(geometry)[-1]][1],
        "preferredFormats": ["jpg"],
    }


_REGION = re.compile(r"^(\d+),(\d+),(\d+),(\d+)$")
_SIZE = re.compile(r"^(\^?)(?:(max)|(\d+),(\d*)|,(\d+)|!(\d+),(\d+)|pct:[\d.]+)$")


def _level_of(geometry: Geometry, scale: int) -> int:
    return geometry.max_level - int(math.log2(scale))


def parse(geometry: Geometry, region: str, size: str, rotation: str, quality: str, fmt: str) -> TileRequest:
    """The stored tile a level-0 request names; IiifBadRequest / IiifNotImplemented otherwise."""
    if fmt not in ("jpg",):
        if fmt in ("png", "tif", "gif", "pdf", "jp2", "webp"):
            raise IiifNotImplemented("Only the jpg format is offered.", code="iiif_not_supported",
                                     params={"feature": fmt})
        raise IiifBadRequest("Unknown image format %(format)s.", params={"format": fmt})
    if quality not in ("default", "color"):
        if quality in ("gray", "bitonal"):
            raise IiifNotImplemented("Only the default quality is offered.", params={"feature": quality})
        raise IiifBadRequest("Unknown quality %(quality)s.", params={"quality": quality})
    if rotation not in ("0",):
        if re.fullmatch(r"!?\d+(\.\d+)?", rotation):
            raise IiifNotImplemented("Rotation is not offered.", params={"feature": "rotation"})
        raise IiifBadRequest("Rotation must be a number of degrees.")
    if not _SIZE.match(size):
        raise IiifBadRequest("The size %(size)s is not valid IIIF syntax.", params={"size": size})

    if region == "full" or (region == "square" and geometry.width == geometry.height):
        x, y, w, h = 0, 0, geometry.width, geometry.height
    elif m := _REGION.match(region):
        x, y, w, h = (int(v) for v in m.groups())
        if w == 0 or h == 0:
            raise IiifBadRequest("The region must not be empty.")
    elif region == "square" or region.startswith("pct:"):
        raise IiifNotImplemented("Only tile regions are offered.", params={"feature": "region"})
    else:
        raise IiifBadRequest("The region %(region)s is not valid IIIF syntax.", params={"region": region})
    if x >= geometry.width or y >= geometry.height:
        raise IiifBadRequest("The region lies outside the image.")
    if (x, y, w, h) == (0, 0, geometry.width, geometry.height) and not size.startswith("^"):
        whole = _whole(geometry, size)
        if whole is not None:
            return whole
    w, h = min(w, geometry.width - x), min(h, geometry.height - y)

    # Which scale factor makes this region one tile: the region's width is tile * s (or the rest of the
    # image at the right edge), and its origin is on that scale's tile grid.
    for scale in scale_factors(geometry):
        span = geometry.tile_size * scale
        if x % span or y % span:
            continue
        if w != min(span, geometry.width - x) or h != min(span, geometry.height - y):
            continue
        level = _level_of(geometry, scale)
        out_w, out_h = math.ceil(w / scale), math.ceil(h / scale)
        level_w, level_h = geometry.level_dimensions[level]
        col, row = x // span, y // span
        out_w = min(out_w, level_w - col * geometry.tile_size)
        out_h = min(out_h, level_h - row * geometry.tile_size)
        if not _size_matches(size, out_w, out_h, w, h):
            continue
        return TileRequest(level, col, row, out_w, out_h)
    raise IiifNotImplemented("Only the tiles and sizes listed in info.json are offered (compliance level 0).",
                             params={"feature": "region/size"})


def _whole(geometry: Geometry, size: str) -> TileRequest | None:
    """The whole image at ``max`` (the largest level on offer) or at one of the listed sizes."""
    levels = _whole_levels(geometry)
    if size == "max":
        level = levels[-1]
    else:
        level = next((lv for lv in levels if _size_matches(size, *geometry.level_dimensions[lv], 0, 0)), None)
        if level is None:
            return None
    w, h = geometry.level_dimensions[level]
    # a level that is one stored tile is served as that tile (its bytes, no re-encoding)
    return TileRequest(level, 0, 0, w, h, whole=geometry.level_tiles(level) != (1, 1))


def _size_matches(size: str, out_w: int, out_h: int, region_w: int, region_h: int) -> bool:
    """Whether ``size`` asks for exactly the stored tile's pixels (no upscaling at level 0)."""
    if size.startswith("^"):
        size = size[1:]
    if size == "max":
        return True
    if m := re.fullmatch(r"(\d+),(\d*)", size):
        return int(m.group(1)) == out_w and (not m.group(2) or int(m.group(2)) == out_h)
    if m := re.fullmatch(r",(\d+)", size):
        return int(m.group(1)) == out_h
    if m := re.fullmatch(r"!(\d+),(\d+)", size):
        return int(m.group(1)) >= out_w and int(m.group(2)) >= out_h and (
            int(m.group(1)) == out_w or int(m.group(2)) == out_h)
    return False


def tile_body(geometry: Geometry, req: TileRequest, stored: bytes) -> bytes:
    """The JPEG for ``req``: the stored bytes when the pyramid has no overlap, else the tile's own
    cell cropped out of the overlapping tile and re-encoded."""
    if not geometry.overlap:
        return stored
    left = geometry.overlap if req.col > 0 else 0
    top = geometry.overlap if req.row > 0 else 0
    with Image.open(io.BytesIO(stored)) as img:
        cell = img.convert("RGB").crop((left, top, left + req.width, top + req.height))
    out = io.BytesIO()
    cell.save(out, "JPEG", quality=REENCODE_QUALITY)
    return out.getvalue()


def whole_level(geometry: Geometry, req: TileRequest, tile: "Callable[[int, int, int], bytes]") -> bytes:
    """The whole of level ``req.level`` as one JPEG, composed from its stored tiles (``tile(level, col,
    row)``), each cut to its own cell first."""
    canvas = Image.new("RGB", (req.width, req.height), (255, 255, 255))
    cols, rows = geometry.level_tiles(req.level)
    for row in range(rows):
        for col in range(cols):
            cell_w = min(geometry.tile_size, req.width - col * geometry.tile_size)
            cell_h = min(geometry.tile_size, req.height - row * geometry.tile_size)
            left = geometry.overlap if col > 0 else 0
            top = geometry.overlap if row > 0 else 0
            with Image.open(io.BytesIO(tile(req.level, col, row))) as img:
                canvas.paste(img.convert("RGB").crop((left, top, left + cell_w, top + cell_h)),
                             (col * geometry.tile_size, row * geometry.tile_size))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=REENCODE_QUALITY)
    return out.getvalue()
