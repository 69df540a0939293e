"""Domain errors carry a stable machine code; the web layer maps them to HTTP statuses."""

from __future__ import annotations


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}


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
                 retry_after: int = 2) -> None:
        super().__init__(message, code=code, details=details)
        self.retry_after = retry_after
