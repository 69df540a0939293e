"""The tus server configured for this deployment: hooks bind uploads to cases,
quotas and object storage. Framework-free so the worker can run its clean-up."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from .. import runtime
from ..db import SessionLocal
from ..models import Case, User
from ..uploads.staging import StagingArea
from ..uploads.tus import TusServer, UploadRefused
from . import policy
from . import slides as slide_service
from .errors import DomainError

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
            upload_id=row_id, allow_duplicate=(metadata.get("allow_duplicate") or "").lower() in ("1", "true", "yes"),
            expires_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=settings.upload_expiry_hours))
        db.commit()
    except DomainError as exc:
        db.rollback()
        raise UploadRefused(exc.status, exc.code, exc.message) from None
    return {"upload_row": row_id, "user_id": principal.id, "case_id": int(metadata["case_id"])}


def _on_complete(info) -> None:
    db = SessionLocal()
    try:
        slide_service.complete_upload(db, runtime.store(), info.owner["upload_row"], str(info.data_path), info.sha256)
    except DomainError as exc:
        db.rollback()
        raise UploadRefused(exc.status, exc.code, exc.message) from None


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
                            before_create=_before_create, on_complete=_on_complete, authorize=_authorize)
    return _server
