"""The tus endpoint at /api/v1/uploads/ (protocol in pathology_hub.uploads, hooks in
pathology_hub/upload_server.py, reached through ``app.extensions["tus_server"]``). Browser uploads carry the session cookie and the CSRF
header; scanner workstations send ``Authorization: Bearer`` tokens.

Beside it, ``POST /api/v1/uploads/<id>/preview`` takes the coarse-level preview the uploader sends
before the original (domain/slides/preview.py)."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify, request, url_for
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge

from .. import runtime
from ..domain.errors import TooLarge
from ..domain.slides import preview as preview_service
from .authz import me
from .error_messages import localize_upload_error
from .tus_adapter import make_tus_blueprint

preview_bp = Blueprint("upload_preview", __name__)


def _authenticate():
    return current_user._get_current_object() if current_user.is_authenticated else None


@preview_bp.route("/api/v1/uploads/<upload_id>/preview", methods=["POST"])
def preview(upload_id: str):
    """Coarse-level preview of an unfinished upload: a tile pack (body) and the slide's Deep Zoom
    geometry (query ``width``, ``height``, ``tile_size``, ``overlap``); the slide opens at low
    magnification while the original still arrives.
    ---
    post:
      summary: Preview pyramid of an upload in progress
    """
    limit = runtime.settings().max_preview_bytes
    request.max_content_length = limit
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise TooLarge("The preview is larger than %(max_bytes)s bytes.", code="preview_too_large",
                       params={"max_bytes": limit}) from None
    slide = preview_service.attach_preview_for(
        me(), current_app.extensions["tus_server"]().staging, runtime.store(), upload_id, body,
        width=request.args.get("width"), height=request.args.get("height"),
        tile_size=request.args.get("tile_size"), overlap=request.args.get("overlap"),
        max_bytes=limit)
    return jsonify({"slide_id": slide.id, "preview_level": slide.preview_level,
                    "viewer_url": url_for("slides.viewer", case_id=slide.case_id, slide=slide.id)}), 201


def init_app(app: Flask) -> None:
    app.register_blueprint(make_tus_blueprint(app.extensions["tus_server"], authenticate=_authenticate, localize=localize_upload_error))
    app.register_blueprint(preview_bp)
