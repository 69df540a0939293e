"""IIIF Image API 3.0 (compliance level 0) for the slides a user may see.

Thin handlers over :mod:`..domain.iiif`: the identifier is the slide's id, access is the tile policy
(``slide.view``, through the login session or ``Authorization: Bearer <API token>``; no access and
no such slide look the same, 404), and every tile served feeds the same sampled ``slide.viewed``
audit as Deep Zoom tiles. Tiles come from the stored pyramid (:func:`.tile_fastpath.reader_for`).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, jsonify, redirect, url_for

from storage.errors import ObjectNotFound

from ..domain import iiif
from ..domain import slides as slide_service
from ..domain.errors import NotFound, NotReadyYet
from ..tiling import TileNotFound, TileNotReady
from ..tiling.reader import PyramidReader
from . import view_audit_hook
from .authz import authorize, load_model, me
from .cors import allow_cors
from .tile_fastpath import forget_reader, reader_for

bp = Blueprint("iiif", __name__, url_prefix="/iiif/3")
allow_cors(bp)
_slide = load_model(slide_service.find_slide, "slide_id")
IIIF_JSON = 'application/ld+json;profile="http://iiif.io/api/image/3/context.json"'


def _reader(slide: Any) -> PyramidReader:
    if slide.status.value not in ("ready", "tiling"):
        raise NotFound("This slide has no image to serve yet.", code="slide_not_ready")
    try:
        return reader_for(slide.uid, slide.pyramid_version)
    except (TileNotFound, ObjectNotFound):
        forget_reader(slide.uid)
        raise NotFound("This slide has no image to serve yet.", code="slide_not_ready") from None


@bp.route("/<int:slide_id>")
@authorize("slide.view", load=_slide, as_arg="slide")
def base(slide: Any):
    """The image's base URI redirects to its information document (IIIF Image API 3.0, 2.2).
    ---
    get:
      summary: "IIIF: base URI of a slide's image service (303 to info.json)"
      tags: [IIIF]
    """
    return redirect(url_for("iiif.info_json", slide_id=slide.id), code=303)


@bp.route("/<int:slide_id>/info.json")
@authorize("slide.view", load=_slide, as_arg="slide")
def info_json(slide: Any):
    """IIIF Image API 3.0 information document (level 0: the pyramid's tiles and one-tile sizes).
    ---
    get:
      summary: "IIIF: info.json of a slide (ImageService3, level0)"
      tags: [IIIF]
      responses:
        200: {description: "application/ld+json (IIIF Image API 3 context)"}
        404: {description: "`not_found` (no such slide or no access) or `slide_not_ready`"}
    """
    geometry = _reader(slide).geometry
    service_id = url_for("iiif.base", slide_id=slide.id, _external=True)
    resp = jsonify(iiif.info(service_id, geometry))
    resp.headers["Content-Type"] = IIIF_JSON
    resp.headers["Cache-Control"] = "private, max-age=60"
    return resp


@bp.route("/<int:slide_id>/<region>/<size>/<rotation>/<quality>.<fmt>")
@authorize("slide.view", load=_slide, as_arg="slide")
def image(slide: Any, region: str, size: str, rotation: str, quality: str, fmt: str):
    """IIIF Image API 3.0 image request: one tile of the pyramid, as listed in info.json.
    ---
    get:
      summary: "IIIF: a tile ({region}/{size}/0/default.jpg) of a slide"
      description: >-
        Level 0: regions on the tile grid of a listed scale factor, sizes `max`, `w,`, `,h`, `w,h` or
        `!w,h` that equal the stored tile; or region `full` at `max` or a size listed in info.json
        (composed from the level's tiles, at most 2048 px a side). Tiles of 256-px pyramids without overlap are the stored
        bytes; older 254/1 pyramids are cropped to the tile's own cell and re-encoded.
      tags: [IIIF]
      responses:
        200: {description: "image/jpeg"}
        400: {description: "`iiif_bad_request`: not valid IIIF syntax, or outside the image"}
        404: {description: "`not_found` (no such slide or no access) or `slide_not_ready`"}
        501: {description: "`iiif_not_supported`: beyond compliance level 0"}
    """
    reader = _reader(slide)
    geometry = reader.geometry
    req = iiif.parse(geometry, region, size, rotation, quality, fmt)
    try:
        body = (iiif.whole_level(geometry, req, reader.tile) if req.whole
                else iiif.tile_body(geometry, req, reader.tile(req.level, req.col, req.row)))
    except TileNotReady:
        raise NotReadyYet("This part of the slide is still being prepared; it appears in a few seconds.",
                          code="tile_not_ready", retry_after=2) from None
    except (TileNotFound, ObjectNotFound):
        forget_reader(slide.uid)
        raise NotFound("No such tile.", code="tile_not_found") from None
    view_audit_hook.on_tile_known(me().id, slide, req.level)
    resp = Response(body, mimetype="image/jpeg")
    resp.headers["Cache-Control"] = "private, max-age=3600"
    resp.headers["Link"] = '<http://iiif.io/api/image/3/level0.json>;rel="profile"'
    return resp


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
