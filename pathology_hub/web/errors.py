"""One error format everywhere: ``{"error": {"code", "message"}}`` for the API,
a friendly page for browsers, never a stack trace."""

from __future__ import annotations

import json
import logging
import uuid

from flask import Flask, current_app, make_response, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from storage.errors import IntegrityError, InvalidKey, ObjectNotFound, StorageError, StorageUnavailable

from ..domain import unit_of_work
from ..domain.errors import DomainError
from . import error_messages, refusal_audit_hook

log = logging.getLogger("pathology_hub.web")

STORAGE_STATUS = {ObjectNotFound: 404, StorageUnavailable: 503, IntegrityError: 500, InvalidKey: 400}


#: Werkzeug's own errors (no such URL, wrong method…) as page-friendly text in the user's language,
#: used when the handler gave no text of its own.
HTTP_MESSAGES = {404: _l("This page does not exist. Check the address, or go back to the worklist."),
                 405: _l("This page cannot be used that way."),
                 403: _l("You do not have permission to open this page.")}


def message_of(exc: DomainError) -> str:
    """The message of a domain error in the reader's language (one catalogue: error_messages)."""
    return error_messages.message_of(exc)


def flash_error(exc: DomainError, text: str | None = None) -> None:
    """Flash a domain error for the next page; its stable code travels in the category
    (``error:<code>``) and base.html shows it small under the message, for support staff."""
    from flask import flash
    flash(text if text is not None else message_of(exc), f"error:{exc.code}")


def wants_json() -> bool:
    if request.path.startswith(("/api/", "/dicomweb/", "/iiif/")):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def error_response(status: int, code: str, message: str, details: dict | None = None):
    if wants_json():
        body: dict = {"error": {"code": code, "message": message}}
        if details:
            body["error"]["details"] = details
        # UTF-8 as is: a support engineer reading the raw answer sees "未找到。", not \u672a…
        return current_app.response_class(json.dumps(body, ensure_ascii=False, default=str) + "\n",
                                          mimetype="application/json"), status
    return render_template("error.html", status=status, code=code, message=message), status


def init_app(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError):
        refusal_audit_hook.on_domain_error(exc)  # before the rollback expires the refused object
        unit_of_work.discard()
        resp = make_response(error_response(exc.status, exc.code, message_of(exc), exc.details))
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            resp.headers["Retry-After"] = str(int(retry_after))
        return resp

    @app.errorhandler(StorageError)
    def storage_error(exc: StorageError):
        unit_of_work.discard()
        status = next((v for k, v in STORAGE_STATUS.items() if isinstance(exc, k)), 500)
        log.warning("storage error", extra={"error_code": exc.code, "path": request.path})
        return error_response(status, exc.code, error_messages.render(exc.code))

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return error_response(400, "csrf_failed", error_messages.render("csrf_failed"))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        # Werkzeug's stock description is replaced by the catalogue's; a handler's own text
        # (abort(404, "…")) is translated when it is a catalogue entry
        own = exc.description if exc.description != type(exc).description else ""
        if not own and exc.code in HTTP_MESSAGES:
            return error_response(exc.code, code, str(HTTP_MESSAGES[exc.code]))
        message = error_messages.render(code, own or "") or exc.description or exc.name
        return error_response(exc.code or 500, code, message)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        unit_of_work.discard()
        ref = uuid.uuid4().hex[:12]
        log.exception("unhandled error", extra={"ref": ref, "path": request.path})
        return error_response(500, "internal_error", error_messages.render("internal_error", params={"ref": ref}))
