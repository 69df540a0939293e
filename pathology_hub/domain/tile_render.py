"""Tiles of a pyramid that is still being built, rendered by a worker, never by a web process.

Why not in the web process: opening an original means running native decoders
(OpenSlide, libtiff, OpenJPEG) on an uploaded file, and ingest promises that only
the worker side ever does that; a crafted file must not be able to take a web
process down. And a web node has no local copy of the original on an S3 store:
fetching gigabytes for one 256-pixel tile would be absurd.

So the web asks the queue for the tile and waits briefly. The worker renders it
only from a copy of the original it already holds (the local folder backend's file,
or the copy the tiling job downloaded into the worker cache); when it has none,
it says so and the viewer retries until the pipeline stores the tile itself.
Rendered tiles are stored under the pyramid's ``ondemand/`` prefix, so each is
rendered once and later requests read it like any stored object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import ObjectStore

from ..models import Slide, SlideStatus
from ..tiling import layout
from . import slides as slide_service


#: Asks a worker to render one tile and waits at most ``wait_seconds``: ``(uid, version, level,
#: col, row, wait_seconds) -> rendered``. Set by ``bootstrap.py`` (a Huey task); the web calls
#: :func:`request_render` and never imports the queue.
RenderRequest = Callable[[str, int, int, int, int, float], bool]
_REQUEST: list[RenderRequest] = []


def set_render_requester(fn: RenderRequest) -> None:
    _REQUEST[:] = [fn]


def request_render(uid: str, version: int, level: int, col: int, row: int, *, wait_seconds: float) -> bool:
    """Web side: True when a worker stored the tile under :func:`ondemand_key` in time."""
    if not _REQUEST:
        raise RuntimeError("tiles cannot be requested before pathology_hub.bootstrap.wire() ran")
    return _REQUEST[0](uid, version, level, col, row, wait_seconds)


def ondemand_key(uid: str, version: int, level: int, col: int, row: int) -> str:
    """Where a tile rendered ahead of the pipeline is kept (immutable per pyramid version)."""
    return layout.ondemand_key(layout.pyramid_prefix(uid, version), level, col, row)


def render_into_store(session: Session, store: ObjectStore, uid: str, version: int,
                      level: int, col: int, row: int) -> bool:
    """Worker side: render one tile and store it; False when no local original is at hand.

    Only a slide that is still tiling is rendered: once it is ready, every tile is in
    the pyramid and a request for a missing one is a request outside it.
    """
    key = ondemand_key(uid, version, level, col, row)
    if store.exists(key):
        return True
    slide = session.scalar(select(Slide).where(Slide.uid == uid))
    if (slide is None or slide.deleted_at is not None or slide.pyramid_version != version
            or slide.status != SlideStatus.TILING or slide.original is None):
        return False
    path = _openable_local_path(store, slide)
    if path is None:
        return False
    from ..tiling import render_tile
    data = render_tile(str(path), level, col, row)
    store.put_bytes(key, data, content_type="image/jpeg")
    return True


def _openable_local_path(store: ObjectStore, slide: Slide) -> Path | None:
    """The openable file, only when the original is already on this machine (never downloaded)."""
    if slide_service.local_original_if_present(store, slide.original, slide.original_filename) is None:
        return None
    return slide_service.openable_path(store, slide)
