"""The tus server configured for this deployment: hooks bind uploads to cases,
quotas and object storage. Framework-free so the worker can run its clean-up
and retry the hand-over of uploads that arrived while storage was down.

This is wiring (it joins the tus protocol in ``uploads/``, the rules in
``domain/slides.py``, the database sessions and the settings), so it lives beside
``bootstrap.py`` and not in the domain. The web layer reaches it through
``app.extensions["tus_server"]``."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from sqlalchemy.exc import OperationalError

from storage.errors import IntegrityError, StorageUnavailable

from . import runtime
from .db import SessionLocal
from .domain import policy
from .domain import slides as slide_service
from .domain.errors import DomainError
from .models import Case, User
from .uploads.staging import StagingArea
from .uploads.tus import TusServer, UploadRefused

log = logging.getLogger("pathology_hub.uploads")

_server: TusServer | None = None


def _before_create(length: int | None, metadata: dict[str, str], principal: Any) -> dict[str, Any]:
    settings = runtime.settings()
    db = SessionLocal()
    row_id = uuid.uuid4().hex
    try:
        slide_service.register_upload(
            db, principal, case_id=metadata.get("case_id"), filename=metadata.get("filename", ""),
            size=length, stain=metadata.get("stain"), client_sha256=metadata.get("sha256"),
            max_bytes=settings.max_slide_bytes, quota_bytes=settings.institution_quota_bytes,
            upload_id=row_id, max_open=settings.max_open_uploads_per_user,
            allow_duplicate=(metadata.get("allow_duplicate") or "").lower() in ("1", "true", "yes"),
            expires_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=settings.upload_expiry_hours))
        db.commit()
    except DomainError as exc:
        db.rollback()
        raise UploadRefused(exc.status, exc.code, exc.message, details={**exc.params, **exc.details}) from None
    return {"upload_row": row_id, "user_id": principal.id, "case_id": int(metadata["case_id"])}


def _on_complete(info) -> None:
    """Store the verified file and create its slide; "not now" while storage (or the database) is away.

    The tus server keeps the staged file until this returns, so a refusal with
    ``retry_after`` loses nothing: the upload becomes ``storing`` and is handed over
    again by the client's next HEAD or by :func:`retry_pending_uploads`.
    """
    db = SessionLocal()
    row = info.owner["upload_row"]
    try:
        slide_service.complete_upload(db, runtime.store(), row, str(info.data_path), info.sha256)
    except DomainError as exc:
        db.rollback()
        raise UploadRefused(exc.status, exc.code, exc.message, details={**exc.params, **exc.details}) from None
    except (StorageUnavailable, IntegrityError, OperationalError) as exc:
        db.rollback()
        code = "storage_unavailable" if not isinstance(exc, OperationalError) else "database_unavailable"
        log.warning("upload hand-over deferred", extra={"upload_id": row, "error_code": code})
        try:
            slide_service.mark_storing(db, row, code)
            db.commit()
        except OperationalError:
            db.rollback()  # the staging state still says "storing"; the row follows on success
        retry_after = runtime.settings().upload_storage_retry_after
        raise UploadRefused(503, code, "Every byte of the file arrived and is kept safely, but object storage "
                                       "is unavailable right now; the upload finishes by itself when it is back.",
                            retry_after=retry_after) from None


def _on_end(info, reason: str) -> None:
    """Release the upload's quota reservation and its place among the user's open uploads."""
    row = (info.owner or {}).get("upload_row")
    if not row:
        return
    db = SessionLocal()
    try:
        if reason == "cancelled":
            slide_service.cancel_upload(db, row)
        elif reason == "expired":
            slide_service.expire_upload(db, row)
        else:
            err = info.error or {}
            slide_service.fail_upload(db, row, err.get("code", "upload_failed"), err.get("message", ""))
        db.commit()
    except Exception:
        db.rollback()
        raise


def _authorize(info, principal: User) -> bool:
    """The uploader, or anyone who may upload to that case, may resume or cancel it."""
    if info.owner.get("user_id") == principal.id:
        return True
    case = SessionLocal().get(Case, info.owner.get("case_id") or 0)
    return case is not None and policy.can(principal, "slide.upload", case)


def server() -> TusServer:
    global _server
    settings = runtime.settings()
    if _server is None or _server.staging.root != (settings.instance_path / "uploads").resolve():
        _server = TusServer(StagingArea(settings.instance_path / "uploads"), max_size=settings.max_slide_bytes,
                            expiration=dt.timedelta(hours=settings.upload_expiry_hours),
                            before_create=_before_create, on_complete=_on_complete, authorize=_authorize,
                            on_end=_on_end, handover_retry_after=settings.upload_storage_retry_after)
    return _server


def reset() -> None:
    """Forget the server so the next :func:`server` call builds it from the current settings."""
    global _server
    _server = None


def retry_pending_uploads() -> list[str]:
    """Hand over every fully received upload still waiting for storage (worker, every minute)."""
    try:
        return server().retry_pending()
    finally:
        SessionLocal.remove()
