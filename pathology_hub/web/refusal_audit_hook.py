"""Feeds refused requests (403/404 decided by the policy about an object) into the sampled
refused-access audit (``domain/refusal_audit.py``).

Called by the error handler for every :class:`DomainError` that reaches it, before the
request's session is rolled back (the object's ids are read while they are loaded).  It
costs a dict update; a database write happens at most once per window and process.

Tiles: the WSGI fast path (``tile_fastpath.py``) only ever answers requests that carry a
valid tile token, which is issued after the full policy check; every other tile request,
a probing one included, falls through to the Flask tile endpoint, whose policy refusal
lands here.  So the fast path needs no change and no per-tile database query.
"""

from __future__ import annotations

import atexit
import logging
from typing import Any

from flask import Flask, request
from flask_login import current_user

from ..domain import refusal_audit
from ..domain.errors import DomainError
from .security import client_ip

log = logging.getLogger("pathology_hub.audit")


def describe(obj: Any) -> tuple[str, Any, int | None]:
    """(object type, object id, case id) of a model instance the policy refused."""
    object_type = type(obj).__name__.lower()
    object_id = getattr(obj, "id", None)
    case_id = object_id if object_type == "case" else getattr(obj, "case_id", None)
    return object_type, object_id, case_id


def on_domain_error(exc: DomainError) -> None:
    """Note ``exc`` if it is a policy refusal about an object, by a logged-in user; never raises."""
    refusal = getattr(exc, "refusal", None)
    if refusal is None or exc.status not in (403, 404):
        return
    action, obj = refusal
    try:
        user = current_user._get_current_object()
        if obj is None or not getattr(user, "is_authenticated", False):
            return
        object_type, object_id, case_id = describe(obj)
        if object_id is None:
            return
        refusal_audit.note(user.id, object_type, object_id, case_id=case_id, status=exc.status, action=action,
                           path=request.path, ip=client_ip())
        refusal_audit.maybe_flush()
    except Exception:  # noqa: BLE001 - auditing must never turn a 404 into a 500
        log.exception("refused-access audit: could not note a refusal")


def flush_at_exit() -> None:
    try:
        refusal_audit.maybe_flush(force=True)
    except Exception:  # noqa: BLE001 - never fail interpreter shutdown
        log.exception("refused-access audit: final flush failed")


_registered = False


def install(app: Flask) -> None:
    """Window from the settings (``VIEW_AUDIT_WINDOW_SECONDS``), final flush at exit; a new
    application in the same process (tests) drops the previous one's notes."""
    global _registered
    refusal_audit.default_aggregator().discard()
    refusal_audit.configure(float(app.config["SETTINGS"].view_audit_window_seconds))
    if not _registered:
        atexit.register(flush_at_exit)
        _registered = True
