"""One error format everywhere: ``{"error": {"code", "message"}}`` for the API,
a friendly page for browsers, never a stack trace."""

from __future__ import annotations

import logging
import uuid
from typing import Callable

from flask import Flask, jsonify, make_response, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from storage.errors import IntegrityError, InvalidKey, ObjectNotFound, StorageError, StorageUnavailable

from ..db import SessionLocal
from ..domain.errors import DomainError
from . import refusal_audit_hook

log = logging.getLogger("pathology_hub.web")

STORAGE_STATUS = {ObjectNotFound: (404, "The stored object was not found."),
                  StorageUnavailable: (503, "Object storage is unavailable right now; please retry shortly."),
                  IntegrityError: (500, "A stored object failed its integrity check."),
                  InvalidKey: (400, "Invalid object reference.")}


#: Werkzeug's own errors (no such URL, wrong method…) in the user's language instead of its English text.
HTTP_MESSAGES = {404: _l("This page does not exist. Check the address, or go back to the worklist."),
                 405: _l("This page cannot be used that way."),
                 403: _l("You do not have permission to open this page.")}

#: Error codes whose message is rendered in the user's language (the domain stays free of Flask):
#: code -> function of the exception returning the translated text.  Filled by the web modules.
TRANSLATED_MESSAGES: dict[str, Callable[[DomainError], str]] = {}


def message_of(exc: DomainError) -> str:
    """The message of a domain error, translated when its code is registered above."""
    translate = TRANSLATED_MESSAGES.get(exc.code)
    if translate is not None:
        return translate(exc)
    from .slide_text import localized_message  # slide and submission refusals, by code
    return localized_message(exc)


def flash_error(exc: DomainError, text: str | None = None) -> None:
    """Flash a domain error for the next page; its stable code travels in the category
    (``error:<code>``) and base.html shows it small under the message, for support staff."""
    from flask import flash
    flash(text if text is not None else message_of(exc), f"error:{exc.code}")


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def error_response(status: int, code: str, message: str, details: dict | None = None):
    if wants_json():
        body: dict = {"error": {"code": code, "message": message}}
        if details:
            body["error"]["details"] = details
        return jsonify(body), status
    return render_template("error.html", status=status, code=code, message=message), status


def init_app(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError):
        refusal_audit_hook.on_domain_error(exc)  # before the rollback expires the refused object
        SessionLocal.rollback()
        resp = make_response(error_response(exc.status, exc.code, message_of(exc), exc.details))
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            resp.headers["Retry-After"] = str(int(retry_after))
        return resp

    @app.errorhandler(StorageError)
    def storage_error(exc: StorageError):
        SessionLocal.rollback()
        status, message = next((v for k, v in STORAGE_STATUS.items() if isinstance(exc, k)),
                               (500, "Storage error."))
        log.warning("storage error", extra={"error_code": exc.code, "path": request.path})
        return error_response(status, exc.code, message)

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return error_response(400, "csrf_failed", "The form expired or the CSRF token is missing; reload the page and try again.")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        message = HTTP_MESSAGES.get(exc.code or 500)
        return error_response(exc.code or 500, code, str(message) if message else exc.description or exc.name)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        SessionLocal.rollback()
        ref = uuid.uuid4().hex[:12]
        log.exception("unhandled error", extra={"ref": ref, "path": request.path})
        return error_response(500, "internal_error", _("Something went wrong on the server (reference %(ref)s).",
                                                       ref=ref))
