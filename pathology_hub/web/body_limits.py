"""Request body limits per route, enforced before the body is read.

Without them a 400 MB JSON body was read and parsed (≈1.2 GB of memory) before the
handler refused it. Every request gets ``request.max_content_length`` from the table
below before anything touches the body (this hook runs before the login/CSRF hook,
which reads forms): a declared ``Content-Length`` over the limit is answered 413 at
once, and a chunked body (no length) is cut off with the same 413 as soon as reading
passes the limit. Uploads through tus are exempt: they stream to disk in chunks and
the tus server enforces the slide size limit itself.

The JSON parser is also replaced by one that bounds nesting (see
:mod:`pathology_hub.domain.json_limits`).
"""

from __future__ import annotations

import io
from typing import Any

from flask import Flask, current_app, request
from flask.json.provider import DefaultJSONProvider
from flask_babel import gettext as _
from werkzeug.exceptions import RequestEntityTooLarge

from ..domain.json_limits import loads_bounded
from .errors import error_response

#: Endpoints whose bodies stream through their own size checks (tus: 20 GiB slides in chunks).
STREAMING_ENDPOINTS = {"tus.collection", "tus.upload"}
#: Endpoints taking whole documents larger than ordinary JSON (QuPath GeoJSON, DICOM annotations, large polygons).
IMPORT_ENDPOINTS = {"annotations.import_geojson", "annotations.import_dicom", "annotations.create_annotation",
                    "annotations.update_annotation"}
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def limit_for(endpoint: str | None, mimetype: str) -> int | None:
    """The largest body the route accepts, in bytes (None: not limited here)."""
    s = current_app.config["SETTINGS"]
    if endpoint in STREAMING_ENDPOINTS:
        return None
    if endpoint in IMPORT_ENDPOINTS:
        return s.max_import_bytes
    if endpoint == "upload_preview.preview":  # an uploader's coarse-level tile pack (a few MB)
        return s.max_preview_bytes
    if mimetype in FORM_TYPES:
        return s.max_form_bytes
    return s.max_json_bytes


def _mib(n: int) -> str:
    return f"{n / 2**20:.3g} MiB" if n >= 2**20 else f"{n / 1024:.3g} KiB" if n >= 1024 else f"{n} bytes"


def too_large(limit: int | None):
    limit = limit if limit is not None else request.max_content_length
    return error_response(413, "body_too_large",
                          _("The request is too large: at most %(limit)s may be sent here.",
                            limit=_mib(limit or 0)),
                          {"max_bytes": limit})


class BoundedInput(io.RawIOBase):
    """A body stream that raises 413 once more than ``limit`` bytes have been read from it."""

    def __init__(self, inner: Any, limit: int) -> None:
        self._inner, self._limit, self._pos = inner, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b)[: self._limit + 1 - self._pos] if self._pos <= self._limit else memoryview(b)[:1]
        if hasattr(self._inner, "readinto"):
            n = self._inner.readinto(view) or 0
        else:
            data = self._inner.read(len(view))
            n = len(data)
            view[:n] = data
        self._pos += n
        if self._pos > self._limit:
            raise RequestEntityTooLarge()
        return n


def _json_default(value: Any) -> Any:
    """Datetimes as ISO 8601 with the offset (Flask's default is an HTTP date without one)."""
    import datetime as dt
    if isinstance(value, (dt.datetime, dt.date)):
        from ..domain.timezones import iso
        return iso(value)
    return DefaultJSONProvider.default(value)


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider with nesting bounded on input (``request.get_json`` and ``json.loads``);
    datetimes leave as ISO 8601 with their offset."""

    default = staticmethod(_json_default)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads_bounded(s, **kwargs)


def init_app(app: Flask) -> None:
    provider = BoundedJSONProvider(app)
    provider.sort_keys = app.json.sort_keys
    app.json = provider

    @app.before_request
    def bound_request_body():
        if request.endpoint in STREAMING_ENDPOINTS:
            return None
        limit = limit_for(request.endpoint, request.mimetype)
        request.max_content_length = limit
        if limit is None:
            return None
        if request.content_length is not None:
            if request.content_length > limit:
                return too_large(limit)
        elif "wsgi.input_terminated" in request.environ and "stream" not in request.__dict__:
            # A chunked body: Werkzeug would silently stop reading at the limit (the handler then
            # sees truncated JSON); this wrapper turns the first byte past it into the 413.
            request.environ["wsgi.input"] = BoundedInput(request.environ["wsgi.input"], limit)
            request.max_content_length = None
        return None

    @app.errorhandler(RequestEntityTooLarge)
    def body_over_limit(_exc: RequestEntityTooLarge):
        return too_large(None)
