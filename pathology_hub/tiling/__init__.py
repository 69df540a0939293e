"""Deep Zoom tiling engine: build a slide's pyramid into object storage and read it back.

Domain code only (no Flask, no database): the job runner calls
:func:`build_pyramid`, the tile server uses :class:`PyramidReader` and, for
tiles not stored yet, :func:`render_tile`.
"""

from .errors import TileNotFound, TileNotReady, TilingError
from .geometry import Bounds, Geometry
from .pipeline import Checkpoint, Progress, PyramidResult, build_pyramid
from .reader import PyramidReader, validate_address
from .render import DEFAULT_QUALITY, render_tile

__all__ = ["Bounds", "Checkpoint", "DEFAULT_QUALITY", "Geometry", "Progress", "PyramidReader",
           "PyramidResult", "TileNotFound", "TileNotReady", "TilingError", "build_pyramid",
           "render_tile", "validate_address"]
