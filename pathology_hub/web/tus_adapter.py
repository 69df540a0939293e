"""Flask adapter exposing a :class:`TusServer` as a blueprint.

Kept thin on purpose: every protocol decision lives in
:mod:`pathology_hub.uploads.tus`; this module only translates Flask requests
and responses and plugs in authentication.

The application should exempt the blueprint from CSRF checks for bearer-token
clients (``csrf.exempt(bp)``) and let ``authenticate`` decide how a browser
session is verified. No CORS headers are sent: uploads are same-origin only.

Deploy note: with gunicorn sync workers a single multi-GB PATCH (tuspy's
default chunk size is the whole file) outlives the default 30 s ``--timeout``;
use gthread workers or a larger timeout, or make clients send chunks.
"""

from __future__ import annotations

import json
from typing import Any, BinaryIO, Callable

from flask import Blueprint, Response, request, url_for
from werkzeug.exceptions import ClientDisconnected as WerkzeugClientDisconnected
from werkzeug.exceptions import RequestEntityTooLarge

from pathology_hub.uploads.tus import ClientDisconnected, TusRequest, TusServer


class _DisconnectAwareStream:
    """Turns Werkzeug's ClientDisconnected (an HTTP 400 exception) into the core's OSError.

    The core keeps the bytes that arrived before a disconnect, so it must be
    able to tell "the socket died" apart from bugs without knowing Werkzeug.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except WerkzeugClientDisconnected as exc:
            raise ClientDisconnected(str(exc)) from exc


def _json_error(status: int, code: str, message: str) -> Response:
    body = json.dumps({"error": {"code": code, "message": message}})
    return Response(body, status=status, mimetype="application/json",
                    headers={"Tus-Resumable": "1.0.0", "Cache-Control": "no-store"})


def make_tus_blueprint(
    server_factory: Callable[[], TusServer],
    *,
    url_prefix: str = "/api/v1/uploads",
    authenticate: Callable[[], object | None],
    name: str = "tus",
) -> Blueprint:
    """Routes OPTIONS/POST on the collection and HEAD/PATCH/DELETE/GET on ``/<upload_id>``.

    ``authenticate()`` returns the principal (user, API token...) or None for
    a 401; the principal is handed to the server's ``before_create`` and
    ``authorize`` hooks. OPTIONS (capability discovery) needs no login.
    """
    bp = Blueprint(name, __name__, url_prefix=url_prefix)

    def dispatch(upload_id: str | None) -> Response:
        principal: Any = None
        if request.method != "OPTIONS":
            principal = authenticate()
            if principal is None:
                return _json_error(401, "authentication_required",
                                   "Sign in or send a valid API token to upload files.")
        server = server_factory()
        # Slide uploads are far larger than the app-wide form limit; the tus
        # server enforces its own Tus-Max-Size / chunk limits while streaming.
        # (None would fall back to MAX_CONTENT_LENGTH, so set the upload maximum.)
        request.max_content_length = server.max_size
        try:
            body = _DisconnectAwareStream(request.stream)
        except RequestEntityTooLarge:
            return _json_error(413, "file_too_large",
                               f"The request body is larger than the largest upload allowed, {server.max_size} bytes.")
        tus_request = TusRequest(
            method=request.method,
            path_id=upload_id,
            headers=dict(request.headers.items()),
            body=body,
            content_length=request.content_length,
            location_base=url_for(f"{bp.name}.collection"),
            principal=principal,
        )
        result = server.handle(tus_request)
        response = Response(result.body, status=result.status, headers=result.headers)
        if not result.body and "Content-Type" not in result.headers:
            del response.headers["Content-Type"]
        return response

    @bp.route("/", methods=["OPTIONS", "POST"], strict_slashes=False, endpoint="collection")
    def collection() -> Response:
        return dispatch(None)

    # POST is routed too so clients behind PATCH-hostile proxies can use X-HTTP-Method-Override.
    @bp.route("/<upload_id>", methods=["HEAD", "PATCH", "DELETE", "GET", "OPTIONS", "POST"], endpoint="upload")
    def upload(upload_id: str) -> Response:
        return dispatch(upload_id)

    return bp
