"""Per-client-IP throttling of the public (no login) report verification endpoints.

A verification code is long and random, but the endpoints answer anyone: without a limit a
script could try codes as fast as the server answers.  ``/verify``, ``/verify/<code>`` and
``/api/v1/verify/<code>`` share ONE budget per client address (``VERIFY_RATE_LIMIT``,
default 30 per minute, moving window), so switching between the HTML and the JSON form
gains nothing.  Beyond it the answer is 429 ``rate_limited`` (JSON for the API, a translated
page for browsers) with ``Retry-After``.

Counters live in ``RATELIMIT_STORAGE_URI`` (Flask-Limiter / ``limits`` storage): the default
``memory://`` counts per process, so with N worker processes the effective limit is up to
N times the setting; point it at Redis (``redis://host:6379/1``) to share one budget.
"""

from __future__ import annotations

import math
import time

from flask import Flask, current_app, make_response, request
from flask_babel import gettext as _
from flask_limiter import Limiter, RateLimitExceeded
from limits import parse_many

from .errors import error_response
from .security import client_ip

VERIFY_SCOPE = "report-verify"


def _client_key() -> str:
    """The address the project trusts as the client's (see ``security.client_ip``)."""
    return client_ip() or "unknown"


def _verify_limit() -> str:
    return current_app.config["VERIFY_RATE_LIMIT"]


limiter = Limiter(key_func=_client_key, default_limits=[], headers_enabled=True, strategy="moving-window",
                  key_prefix="pathology-hub")

def _form_cost() -> int:
    """``/verify?code=X`` only redirects to ``/verify/X``, which is the lookup and pays for it."""
    return 0 if request.args.get("code") else 1


#: Decorator for the verification views: one shared budget per client IP.
verify_limit = limiter.shared_limit(_verify_limit, scope=VERIFY_SCOPE)
#: The same budget for the code entry form (its redirect to the lookup is free, the lookup is not).
verify_form_limit = limiter.shared_limit(_verify_limit, scope=VERIFY_SCOPE, cost=_form_cost)


def _retry_after(exc: RateLimitExceeded) -> int:
    """Seconds until the next lookup would be allowed (at least 1)."""
    current = limiter.current_limit
    if current is not None:
        return max(1, math.ceil(current.reset_at - time.time()))
    return max(1, int(exc.limit.limit.get_expiry()))


def rate_limited(exc: RateLimitExceeded):
    wait = _retry_after(exc)
    resp = make_response(error_response(
        429, "rate_limited",
        _("Too many verification lookups from your address. Wait %(seconds)s seconds and try again.",
          seconds=wait),
        {"retry_after_seconds": wait}))
    resp.headers["Retry-After"] = str(wait)
    return resp


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    app.config.setdefault("VERIFY_RATE_LIMIT", settings.verify_rate_limit)
    app.config.setdefault("RATELIMIT_STORAGE_URI", settings.ratelimit_storage_uri)
    try:
        if not parse_many(app.config["VERIFY_RATE_LIMIT"]):
            raise ValueError("empty")
    except ValueError as exc:
        raise RuntimeError(f"VERIFY_RATE_LIMIT must look like '30 per minute', got "
                           f"{app.config['VERIFY_RATE_LIMIT']!r}") from exc
    limiter.init_app(app)
    app.register_error_handler(RateLimitExceeded, rate_limited)
