"""The tile hot path as a thin WSGI layer in front of Flask.

A viewer asks for hundreds of tiles per minute and each one is an immutable
JPEG. Routing, Babel, Flask-Login and the response machinery cost more than
reading the tile, so a request that carries a valid tile token (HMAC, bound to
the viewer's login session, see ``domain/tile_access.py``) is answered here
from the pyramid reader. Everything else - no or expired token, tile not built
yet (rendered on demand), tile outside the pyramid, storage outage - falls
through to the Flask endpoint unchanged, which applies the full policy check
and the usual JSON errors. The two paths send the same headers.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

from werkzeug.http import parse_cookie

from .. import runtime
from ..domain import tile_access
from ..tiling import PyramidReader, TileNotFound, TileNotReady

TILE_MAX_AGE = 7 * 24 * 3600
_TILE_PATH = re.compile(
    r"^/api/v1/tiles/(?P<uid>[0-9a-f]{32})/v(?P<version>[0-9]{1,9})/slide_files/"
    r"(?P<level>[0-9]{1,3})/(?P<col>[0-9]{1,7})_(?P<row>[0-9]{1,7})\.jpeg$")

_readers: "OrderedDict[tuple[str, int], PyramidReader]" = OrderedDict()
_readers_lock = threading.Lock()


def reader_for(uid: str, version: int) -> PyramidReader:
    """One shared reader per pyramid version (pack indexes are cached inside it)."""
    key = (uid, version)
    with _readers_lock:
        reader = _readers.get(key)
        if reader is not None:
            _readers.move_to_end(key)
            return reader
    reader = PyramidReader(runtime.store(), f"pyramids/{uid}/v{version}")
    with _readers_lock:
        _readers[key] = reader
        while len(_readers) > 64:
            _readers.popitem(last=False)
    return reader


def forget_reader(uid: str) -> None:
    with _readers_lock:
        for key in [k for k in _readers if k[0] == uid]:
            del _readers[key]


def tile_etag(uid: str, version: int, level: int, col: int, row: int) -> str:
    return f'"{uid[:12]}-{version}-{level}-{col}-{row}"'


def tile_headers(etag: str) -> list[tuple[str, str]]:
    """Headers of every tile answer, fast path or Flask (security headers included)."""
    from .security import CSP
    return [
        ("ETag", etag),
        ("Cache-Control", f"private, max-age={TILE_MAX_AGE}, immutable"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "same-origin"),
        ("X-Frame-Options", "DENY"),
        ("Content-Security-Policy", CSP),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ]


class TileFastPath:
    """WSGI middleware: answers token-authorised tile GETs, passes everything else on."""

    def __init__(self, wsgi_app: Callable, flask_app: Any,
                 on_tile: Callable[[str, int, str], None] | None = None) -> None:
        self.wsgi_app = wsgi_app
        self.flask_app = flask_app
        self.on_tile = on_tile  # (session token, level, slide uid) -> None; sampled view audit
        self._serializer = None

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            match = _TILE_PATH.match(environ.get("PATH_INFO", ""))
            if match is not None:
                answer = self._answer(match, environ)
                if answer is not None:
                    status, headers, body = answer
                    start_response(status, headers)
                    return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]
        return self.wsgi_app(environ, start_response)

    def _session_token(self, environ: dict) -> str | None:
        cookie = parse_cookie(environ.get("HTTP_COOKIE", "")).get(
            self.flask_app.config.get("SESSION_COOKIE_NAME", "session"))
        if not cookie:
            return None
        if self._serializer is None:
            self._serializer = self.flask_app.session_interface.get_signing_serializer(self.flask_app)
        try:
            data = self._serializer.loads(cookie, max_age=int(
                self.flask_app.permanent_session_lifetime.total_seconds()))
        except Exception:  # noqa: BLE001 - a bad cookie simply means "no fast path"
            return None
        token = data.get("_user_id") if isinstance(data, dict) else None
        return token if isinstance(token, str) else None

    def _answer(self, match: re.Match, environ: dict) -> tuple[str, list[tuple[str, str]], bytes] | None:
        uid, version = match["uid"], int(match["version"])
        token = parse_qs(environ.get("QUERY_STRING", "")).get("t", [None])[0]
        session_token = self._session_token(environ) if token else None
        if not tile_access.check_token(self.flask_app.config["SECRET_KEY"], token, uid, version, session_token):
            return None
        level, col, row = int(match["level"]), int(match["col"]), int(match["row"])
        etag = tile_etag(uid, version, level, col, row)
        if environ.get("HTTP_IF_NONE_MATCH") == etag:
            return "304 Not Modified", tile_headers(etag), b""
        try:
            data = reader_for(uid, version).tile(level, col, row)
        except (TileNotReady, TileNotFound):
            return None  # on-demand rendering and 404s are the Flask endpoint's job
        except Exception:  # noqa: BLE001 - storage errors get Flask's 503 handling and logging
            return None
        if self.on_tile is not None and session_token is not None:
            self.on_tile(session_token, level, uid)
        headers = [("Content-Type", "image/jpeg"), ("Content-Length", str(len(data))), *tile_headers(etag)]
        return "200 OK", headers, data
