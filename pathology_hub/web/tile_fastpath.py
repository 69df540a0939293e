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

import datetime as dt
import re
import threading
import time
from time import monotonic as _monotonic  # own name: tests replace the module-level `time` clock
from collections import OrderedDict
from typing import Any, Callable, Iterable

from werkzeug.http import parse_cookie

from .. import runtime
from ..db import get_engine
from ..domain import tile_access
from ..domain.session_liveness import LivenessCache
from ..tiling import PyramidReader, TileNotFound, TileNotReady
from ..tiling.layout import MANIFEST, PREVIEW_MANIFEST, pyramid_prefix, uid_of_prefix, withdrawn_marker

TILE_MAX_AGE = 7 * 24 * 3600
_TILE_PATH = re.compile(
    r"^/api/v1/tiles/(?P<uid>[0-9a-f]{32})/v(?P<version>[0-9]{1,9})/slide_files/"
    r"(?P<level>[0-9]{1,3})/(?P<col>[0-9]{1,7})_(?P<row>[0-9]{1,7})\.jpeg$")

_TOKEN_PARAM = re.compile(r"(?:^|&)t=([0-9A-Za-z._-]{1,100})(?:&|$)")
_MEMO_SIZE = 10_000  # remembered session cookies / tile grants per process; cleared when full
_SESSION_RECHECK = 60.0  # seconds a verified session cookie is trusted without re-verifying

#: A cached reader re-checks that its pyramid still exists this often: a slide deleted through
#: another web process stops being served within this time (its open pack files stay readable).
READER_RECHECK_SECONDS = 30.0

_readers: "OrderedDict[tuple[str, int], tuple[PyramidReader, float]]" = OrderedDict()
_readers_lock = threading.Lock()


def _still_stored(reader: PyramidReader) -> bool:
    from storage.errors import StorageError

    try:
        if reader.store.exists(withdrawn_marker(uid_of_prefix(reader.prefix))):
            return False
        return any(reader.store.exists(f"{reader.prefix}/{name}") for name in (MANIFEST, PREVIEW_MANIFEST))
    except StorageError:
        return True  # an outage is not a deletion; reads will report it themselves


def reader_for(uid: str, version: int) -> PyramidReader:
    """One shared reader per pyramid version (pack indexes are cached inside it).

    TileNotFound when the pyramid is not (or no longer) stored."""
    key = (uid, version)
    with _readers_lock:
        entry = _readers.get(key)
        if entry is not None:
            _readers.move_to_end(key)
    if entry is not None:
        reader, checked = entry
        if _monotonic() - checked < READER_RECHECK_SECONDS:
            return reader
        if _still_stored(reader):
            with _readers_lock:
                _readers[key] = (reader, _monotonic())
            return reader
        forget_reader(uid)
        raise TileNotFound(f"pyramid {uid} v{version} is no longer stored")
    if runtime.store().exists(withdrawn_marker(uid)):
        raise TileNotFound(f"slide {uid} was withdrawn")
    reader = PyramidReader(runtime.store(), pyramid_prefix(uid, version), runtime.pack_cache())
    with _readers_lock:
        _readers[key] = (reader, _monotonic())
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
    global _COMMON_HEADERS
    if _COMMON_HEADERS is None:
        from .security import CSP
        _COMMON_HEADERS = [
            ("Cache-Control", f"private, max-age={TILE_MAX_AGE}, immutable"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "same-origin"),
            ("X-Frame-Options", "DENY"),
            ("Content-Security-Policy", CSP),
            ("Cross-Origin-Opener-Policy", "same-origin"),
        ]
    return [("ETag", etag), *_COMMON_HEADERS]


_COMMON_HEADERS: list[tuple[str, str]] | None = None


class TileFastPath:
    """WSGI middleware: answers token-authorised tile GETs, passes everything else on."""

    def __init__(self, wsgi_app: Callable, flask_app: Any,
                 on_tile: Callable[[str, int, str], None] | None = None) -> None:
        self.wsgi_app = wsgi_app
        self.flask_app = flask_app
        self.on_tile = on_tile  # (session token, level, slide uid) -> None; sampled view audit
        self._serializer = None
        # Verifying the session cookie's signature and the tile token's HMAC costs more than
        # reading the tile; both are pure functions of their inputs (plus the clock), so the
        # results are remembered until the earlier of their own expiry and a short recheck.
        self._sessions: dict[str, tuple[str, float]] = {}
        self._grants: dict[tuple[str, str, int, str], float] = {}
        # ...but whether the session still stands (logout, deactivation) is asked of the
        # database, at most once a second per session and process (shared with the Flask path).
        self.liveness = LivenessCache(get_engine, lambda: dt.timedelta(
            hours=flask_app.config["SETTINGS"].session_max_hours))
        flask_app.extensions["session_liveness"] = self.liveness

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
        header = environ.get("HTTP_COOKIE", "")
        now = time.time()
        known = self._sessions.get(header)  # a browser sends the same Cookie header with every tile
        if known is not None and known[1] > now:
            return known[0]
        cookie = parse_cookie(header).get(self.flask_app.config.get("SESSION_COOKIE_NAME", "session"))
        if not cookie:
            return None
        if self._serializer is None:
            self._serializer = self.flask_app.session_interface.get_signing_serializer(self.flask_app)
        max_age = int(self.flask_app.permanent_session_lifetime.total_seconds())
        try:
            data, signed_at = self._serializer.loads(cookie, max_age=max_age, return_timestamp=True)
        except Exception:  # noqa: BLE001 - a bad cookie simply means "no fast path"
            return None
        token = data.get("_user_id") if isinstance(data, dict) else None
        if not isinstance(token, str):
            return None
        if len(self._sessions) >= _MEMO_SIZE:
            self._sessions.clear()
        self._sessions[header] = (token, min(signed_at.timestamp() + max_age, now + _SESSION_RECHECK))
        return token

    def _granted(self, token: str | None, uid: str, version: int, session_token: str | None) -> bool:
        if not token or not session_token:
            return False
        key = (token, uid, version, session_token)
        expires = self._grants.get(key)
        if expires is not None:
            return expires > time.time()
        if not tile_access.check_token(self.flask_app.config["SECRET_KEY"], token, uid, version, session_token):
            return False
        if len(self._grants) >= _MEMO_SIZE:
            self._grants.clear()
        self._grants[key] = float(token.split(".", 1)[0])  # the token's own expiry, checked above
        return True

    def _answer(self, match: re.Match, environ: dict) -> tuple[str, list[tuple[str, str]], bytes] | None:
        uid, version = match["uid"], int(match["version"])
        query = _TOKEN_PARAM.search(environ.get("QUERY_STRING", ""))
        token = query[1] if query else None
        session_token = self._session_token(environ) if token else None
        if not self._granted(token, uid, version, session_token):
            return None
        try:
            if not self.liveness.is_live(session_token):
                return None  # ended session: Flask refuses it (or serves another valid session)
        except Exception:  # noqa: BLE001 - database trouble gets Flask's error handling and logging
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
