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

from pathology_hub.uploads.tus import ClientDisconnected, TusRequest, TusResponse, TusServer

#: Rewrites an error answer's message for the user (language, wording); gets the code,
#: the core's English message and the error's ``details``, returns the message to send.
Localize = Callable[[str, str, dict], str]


def localized(result: TusResponse, localize: Localize | None) -> TusResponse:
    """The response with its JSON error message passed through ``localize`` (others unchanged)."""
    if localize is None or not result.body or result.headers.get("Content-Type") != "application/json":
        return result
    try:
        payload = json.loads(result.body)
        error = payload["error"]
        error["message"] = localize(error["code"], error["message"], error.get("details") or {})
    except (ValueError, KeyError, TypeError):
        return result
    return TusResponse(result.status, result.headers, json.dumps(payload, ensure_ascii=False).encode("utf-8"))


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


class _GunicornSocketBody:
    """Reads a request body of known length straight from gunicorn's socket into the caller's buffer.

    gunicorn's body reader returns new ``bytes`` per call and copies each byte
    several times through BytesIO buffers; with Werkzeug's stream on top, a
    2 GB slide went through five copies and ran at a quarter of disk speed.
    Here bytes gunicorn already buffered are handed over first, then
    ``recv_into`` fills the caller's preallocated buffer. gunicorn's own
    length counter is kept in step, so keep-alive and draining still work.
    Only used when the objects are exactly what this was written for;
    anything else (chunked bodies, other servers, tests) keeps the standard stream.
    """

    prefers_readinto = True

    def __init__(self, body: Any, reader: Any, sock: Any) -> None:
        self._body, self._reader, self._sock = body, reader, sock

    @classmethod
    def wrap(cls, environ: dict) -> "_GunicornSocketBody | None":
        try:
            from gunicorn.http.body import Body, LengthReader
        except ImportError:
            return None
        body, sock = environ.get("wsgi.input"), environ.get("gunicorn.socket")
        if type(body) is not Body or type(body.reader) is not LengthReader or sock is None:
            return None
        if body.buf.tell() or not hasattr(body.reader.unreader, "take_buffered"):
            return None
        return cls(body, body.reader, sock)

    def readinto(self, view: memoryview) -> int:
        want = min(len(view), self._reader.length)
        if want <= 0:
            return 0
        buffered = self._reader.unreader.take_buffered()
        try:
            if buffered:
                n = min(len(buffered), want)
                view[:n] = buffered[:n]
                if len(buffered) > n:
                    self._reader.unreader.unread(buffered[n:])
            else:
                n = self._sock.recv_into(view[:want])
        except OSError as exc:
            self._body.failed = True  # the connection's position is unknown: never reuse it
            raise ClientDisconnected(str(exc)) from exc
        if n == 0:
            self._body.failed = True
            raise ClientDisconnected("the client closed the connection before the end of the body")
        self._reader.length -= n
        return n

    def read(self, size: int = -1) -> bytes:
        buf = bytearray(max(0, min(size if size >= 0 else self._reader.length, self._reader.length)))
        n = self.readinto(memoryview(buf)) if buf else 0
        return bytes(buf[:n])


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
    localize: Localize | None = None,
) -> Blueprint:
    """Routes OPTIONS/POST on the collection and HEAD/PATCH/DELETE/GET on ``/<upload_id>``.

    ``authenticate()`` returns the principal (user, API token...) or None for
    a 401; the principal is handed to the server's ``before_create`` and
    ``authorize`` hooks. OPTIONS (capability discovery) needs no login.
    ``localize`` words error messages for the user (see :data:`Localize`).
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
            stream = request.stream  # raises when Content-Length is over the limit
            body = (_GunicornSocketBody.wrap(request.environ) if request.content_length is not None
                    else None) or _DisconnectAwareStream(stream)
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
        result = localized(server.handle(tus_request), localize)
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
