"""Domain errors carry a stable machine code; the web layer maps them to HTTP statuses.

The message is an English message id of the catalogue (``messages.po``) with ``%(name)s``
parameters given separately in ``params``: the domain never translates, the web layer
renders the message in the reader's language (pathology_hub/web/error_messages.py).
Every code raised must have an entry there (tests/foundation/test_error_catalogue.py).
"""

from __future__ import annotations


def _fill(template: str, params: dict) -> str:
    """The English text: ``template % params`` (a template without parameters is used as is)."""
    if not params:
        return template
    try:
        return template % params
    except (KeyError, TypeError, ValueError):
        return template


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None,
                 params: dict | None = None) -> None:
        self.template = message
        self.params = dict(params or {})
        self.details = details or {}
        self.message = _fill(message, {**self.details, **self.params})
        super().__init__(self.message)
        if code:
            self.code = code


class ValidationFailed(DomainError):
    status = 422
    code = "validation_failed"


class NotFound(DomainError):
    """Also used for objects the user may not see, so existence is not leaked."""

    status = 404
    code = "not_found"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class AuthenticationFailed(DomainError):
    status = 401
    code = "authentication_failed"


class TooLarge(DomainError):
    status = 413
    code = "too_large"


class NotReadyYet(DomainError):
    """Something that will exist shortly (a tile being rendered): ask again after ``retry_after`` s."""

    status = 503
    code = "not_ready"

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None,
                 retry_after: int = 2, params: dict | None = None) -> None:
        super().__init__(message, code=code, details=details, params=params)
        self.retry_after = retry_after
