"""What became of an upload, for the user asking: "the status of upload X for user Y".

The answer joins two sources: the ``Upload`` row (quota, errors, the slide it made) and
the tus staging area (bytes received, whether the hand-over to storage is pending). The
web layer turns the result into JSON and words; it reads neither source itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from ..models import Case, Job, Slide, SlideStatus, Upload, UploadState, User
from ..uploads.staging import HANDOVER_PENDING, STORING, InvalidUploadId, StagingArea, UploadNotFound
from . import policy, unit_of_work
from . import slides as slide_service
from .errors import NotFound


@dataclass(frozen=True)
class UploadStatus:
    """``status``: failed, ready, rejected, processing (a slide exists), or for an upload without a
    slide: storing, uploading, or the row's own state (cancelled, expired, ...).

    ``detail`` says why an unfinished upload is where it is: ``waiting_for_storage`` (storage is
    away), ``storing_now`` (the hand-over follows the last byte), ``receiving``, ``cancelled``,
    ``expired``, or None."""

    status: str
    upload: Upload
    slide: Slide | None = None
    job: Job | None = None
    received_bytes: int | None = None
    detail: str | None = None


def upload_status(session: Session, user: User, staging: StagingArea, upload_id: str) -> UploadStatus:
    """Status of the tus upload ``upload_id`` for ``user``; NotFound unless the user may see its case."""
    try:
        info = staging.load(upload_id)
    except (InvalidUploadId, UploadNotFound):
        raise NotFound("No such upload.") from None
    upload = session.get(Upload, (info.owner or {}).get("upload_row", ""))
    if upload is None:
        raise NotFound("No such upload.")
    policy.ensure(user, "case.view", session.get(Case, upload.case_id))
    slide = session.get(Slide, upload.slide_id) if upload.slide_id else None
    if upload.state is UploadState.FAILED:
        return UploadStatus("failed", upload)
    if slide is None or upload.state in (UploadState.RECEIVING, UploadState.STORING):
        # (a slide already exists while the file still arrives when the uploader sent a preview first)
        return _unfinished(upload, info)
    status = {SlideStatus.READY: "ready", SlideStatus.REJECTED: "rejected", SlideStatus.FAILED: "failed"}.get(
        slide.status, "processing")
    return UploadStatus(status, upload, slide=slide, job=slide_service.latest_job(session, slide))


def _unfinished(upload: Upload, info: Any) -> UploadStatus:
    """The row says "receiving" while the hand-over that follows the last byte is under way."""
    offset = info.offset
    if upload.state is UploadState.STORING or info.state == STORING:
        return UploadStatus("storing", upload, received_bytes=offset, detail="waiting_for_storage")
    if upload.state is UploadState.RECEIVING and info.state in HANDOVER_PENDING:
        return UploadStatus("storing", upload, received_bytes=offset, detail="storing_now")
    if upload.state is UploadState.RECEIVING:
        return UploadStatus("uploading", upload, received_bytes=offset, detail="receiving")
    detail = {UploadState.CANCELLED: "cancelled", UploadState.EXPIRED: "expired"}.get(upload.state)
    return UploadStatus(upload.state.value, upload, received_bytes=offset, detail=detail)


def upload_status_for(user: User, staging: StagingArea, upload_id: str) -> UploadStatus:
    """:func:`upload_status` in the current unit of work (the web's one call)."""
    return upload_status(unit_of_work.current(), user, staging, upload_id)
