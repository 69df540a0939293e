"""Deep Zoom tiling engine: build a slide's pyramid into object storage and read it back.

Domain code only (no Flask, no database): the job runner calls
:func:`build_pyramid`, the tile server uses :class:`PyramidReader` and, for
tiles not stored yet, :func:`render_tile`.

Two sides: the *read* side (:mod:`.reader`, :mod:`.layout`, :mod:`.pack`, :mod:`.pack_cache`,
:mod:`.geometry`) serves tiles in every web process; the *build* side (:mod:`.pipeline`,
:mod:`.render`, :mod:`.source`, with OpenSlide and a process pool) runs on workers.  The build
side's names are loaded on first use (PEP 562 ``__getattr__``), so importing this package or the
reader never loads OpenSlide or the pipeline.
"""

from __future__ import annotations

from typing import Any

from .errors import TileNotFound, TileNotReady, TilingError
from .geometry import Bounds, Geometry
from .layout import validate_address
from .reader import PyramidReader

#: Build-side names and the module that defines them, imported when first asked for.
_BUILD_SIDE = {
    "Checkpoint": "pipeline", "Progress": "pipeline", "PyramidResult": "pipeline", "build_pyramid": "pipeline",
    "DEFAULT_QUALITY": "render", "render_tile": "render",
}

__all__ = ["Bounds", "Checkpoint", "DEFAULT_QUALITY", "Geometry", "Progress", "PyramidReader",
           "PyramidResult", "TileNotFound", "TileNotReady", "TilingError", "build_pyramid",
           "render_tile", "validate_address"]


def __getattr__(name: str) -> Any:
    module = _BUILD_SIDE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
