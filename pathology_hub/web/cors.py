"""CORS for the endpoints external viewers read (IIIF, DICOMweb): off unless an origin is listed.

``CORS_ALLOWED_ORIGINS`` names the viewers' origins. A listed origin gets ``Access-Control-Allow-Origin``
with itself (never ``*``: these answers depend on the user's credentials), ``Vary: Origin``, and an
answer to the browser's preflight; any other origin gets no CORS header, so its scripts cannot read
the response. Apply it per blueprint: ``allow_cors(bp)``.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

ALLOWED_METHODS = "GET, HEAD, OPTIONS"
ALLOWED_HEADERS = "Authorization, Accept, Range"
EXPOSED_HEADERS = "Content-Type, Content-Length, ETag"
PREFLIGHT_MAX_AGE = "600"


def _allowed(origin: str | None) -> bool:
    return bool(origin) and origin in current_app.config["SETTINGS"].cors_allowed_origins


def _decorate(resp: Response) -> Response:
    resp.vary.add("Origin")
    origin = request.headers.get("Origin")
    if _allowed(origin):
        resp.headers["Access-Control-Allow-Origin"] = origin
        resp.headers["Access-Control-Allow-Credentials"] = "true"
        resp.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    return resp


def _preflight() -> Response | None:
    """Answer a CORS preflight (OPTIONS with Access-Control-Request-Method) before the view runs."""
    if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
        return None
    resp = Response(status=204)
    if _allowed(request.headers.get("Origin")):
        resp.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        resp.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        resp.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    return resp


def allow_cors(bp: Blueprint) -> None:
    """CORS for every route of ``bp``, for the configured origins only."""
    bp.before_request(_preflight)
    bp.after_request(_decorate)
