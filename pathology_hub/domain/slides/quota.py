"""Storage quota and open-upload limits: the bytes a centre uses (stored originals plus uploads
still holding a reservation) and the uploads of a user still receiving bytes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pathology_hub.domain.errors import DomainError
from pathology_hub.models import Case, Slide, StoredOriginal, Upload, UploadState, utcnow


class TooManyOpenUploads(DomainError):
    status = 429
    code = "too_many_open_uploads"


def _open_upload(now: dt.datetime) -> Any:
    """Uploads holding a reservation: bytes still arriving (until they expire), or all here
    and waiting for storage (never expire: the bytes are verified and kept)."""
    receiving = (Upload.state == UploadState.RECEIVING) & (Upload.expires_at.is_(None) | (Upload.expires_at > now))
    return receiving | (Upload.state == UploadState.STORING)


def institution_usage(session: Session, institution_id: int, now: dt.datetime | None = None) -> int:
    """Bytes of originals linked to the institution's slides plus uploads still holding a reservation.

    An upload stops counting the moment it is deleted, fails or expires (its row leaves
    the open states, or its expiry passes even before the sweeper ran)."""
    stored = session.scalar(
        select(func.coalesce(func.sum(StoredOriginal.size), 0))
        .where(StoredOriginal.id.in_(select(Slide.original_id).join(Case).where(
            Case.institution_id == institution_id, Slide.deleted_at.is_(None)))))
    pending = session.scalar(select(func.coalesce(func.sum(Upload.size), 0)).where(
        Upload.institution_id == institution_id, _open_upload(now or utcnow())))
    return int(stored or 0) + int(pending or 0)


def open_uploads_of(session: Session, user_id: int, now: dt.datetime | None = None) -> int:
    """Uploads of one user (all their sessions and API tokens) whose bytes are still arriving."""
    now = now or utcnow()
    return int(session.scalar(select(func.count(Upload.id)).where(
        Upload.user_id == user_id, Upload.state == UploadState.RECEIVING,
        Upload.expires_at.is_(None) | (Upload.expires_at > now))) or 0)
