"""Uploads from creation to slide: the checks at tus creation (policy, size, quota, duplicates),
the upload's state changes, and moving a finished, verified file into object storage as a new
slide with its ``ingest`` job (idempotent, so a retried completion never duplicates data).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import unicodedata
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pathology_hub.domain import audit, jobs, policy
from pathology_hub.domain.errors import Conflict, NotFound, TooLarge, ValidationFailed
from pathology_hub.domain.slides.keys import SAFE_NAME, original_key
from pathology_hub.domain.slides.quota import TooManyOpenUploads, institution_usage, open_uploads_of
from pathology_hub.models import Case, Institution, Slide, SlideStatus, StoredOriginal, Upload, UploadState, User, utcnow
from storage.base import ObjectInfo, ObjectStore
from storage.errors import IntegrityError, ObjectNotFound
from storage.verify import file_sha256

log = logging.getLogger("pathology_hub.slides")

STAIN_MAX = 64
FILENAME_MAX = 255


def plain_text(value: str, *, field: str, limit: int) -> str:
    """Upload metadata shown to people (stain, file name): one line of printable text.

    Refused rather than silently cut, so the technician sees why: longer than ``limit``
    characters, or carrying control or invisible formatting characters (line breaks,
    NUL, bidirectional overrides that disguise a file name)."""
    if len(value) > limit:
        raise ValidationFailed("metadata %(field)s is longer than %(max_length)s characters.",
                               code=f"invalid_{field}", details={"field": field, "max_length": limit})
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") for ch in value):
        raise ValidationFailed("metadata %(field)s contains control characters.",
                               code=f"invalid_{field}", details={"field": field})
    return value


def register_upload(session: Session, user: User, *, case_id: Any, filename: str, size: int | None,
                    stain: str | None, client_sha256: str | None, max_bytes: int, quota_bytes: int,
                    upload_id: str, expires_at: dt.datetime | None, max_open: int | None = None,
                    allow_duplicate: bool = False) -> Upload:
    """Checks at tus creation time, so a refused upload sends no bytes at all.

    A declared SHA-256 that is already a live slide of the case is refused (409 ``duplicate_slide``)
    unless the client chose to attach it again (``allow_duplicate``); that choice is audited."""
    case = session.get(Case, int(case_id)) if str(case_id or "").isdigit() else None
    if case is None:
        raise ValidationFailed("The upload must name an existing case (metadata case_id).", code="unknown_case")
    policy.ensure(user, "slide.upload", case)
    filename = os.path.basename((filename or "").replace("\\", "/")).strip()
    if not filename:
        raise ValidationFailed("The upload must carry its file name (metadata filename).", code="missing_filename")
    filename = plain_text(filename, field="filename", limit=FILENAME_MAX)
    stain = plain_text((stain or "H&E").strip(), field="stain", limit=STAIN_MAX) or "H&E"
    if size is None:
        raise ValidationFailed("Slides must be uploaded with a known length (no Upload-Defer-Length).",
                               code="length_required")
    if size > max_bytes:
        raise TooLarge("The file is %(size)s GiB; the largest slide accepted is %(max)s GiB.", code="slide_too_large",
                       params={"size": f"{size / 2**30:.1f}", "max": f"{max_bytes / 2**30:.1f}"})
    # Serialise creations per user and per centre (row locks on PostgreSQL; SQLite has one writer),
    # so parallel requests cannot all pass the checks below before any of them is recorded.
    session.scalar(select(User.id).where(User.id == user.id).with_for_update())
    session.scalar(select(Institution.id).where(Institution.id == case.institution_id).with_for_update())
    if max_open is not None:
        open_now = open_uploads_of(session, user.id)
        if open_now >= max_open:
            raise TooManyOpenUploads(
                f"You already have {open_now} unfinished uploads (at most {max_open}). Finish or remove "
                f"some of them, or wait until they expire, before starting another.",
                details={"open": open_now, "limit": max_open})
    used = institution_usage(session, case.institution_id)
    if used + size > quota_bytes:
        raise TooLarge("Your centre's storage quota (%(quota)s GiB) would be exceeded: "
                       "%(used)s GiB used, this file is %(size_gib)s GiB.", code="quota_exceeded",
                       params={"quota": f"{quota_bytes / 2**30:.1f}", "used": f"{used / 2**30:.1f}",
                               "size_gib": f"{size / 2**30:.1f}"},
                       details={"quota_bytes": quota_bytes, "used_bytes": used, "size": size})
    if client_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", client_sha256):
        raise ValidationFailed("metadata sha256 must be 64 lower-case hex digits.", code="invalid_sha256")
    from pathology_hub.domain.slide_facts import duplicates
    same = duplicates(session, case, client_sha256) if client_sha256 else []
    if same and not allow_duplicate:
        first = same[0]
        raise Conflict("This file is already slide %(label)s (id %(slide_id)s) of this case; send metadata "
                       "allow_duplicate=1 to attach it again.", code="duplicate_slide",
                       details={"slide_id": first.id, "label": first.label, "slides": [s.id for s in same]})
    upload = Upload(id=upload_id, case_id=case.id, user_id=user.id, institution_id=case.institution_id,
                    filename=filename, size=size, stain=stain,
                    client_sha256=client_sha256, expires_at=expires_at)
    session.add(upload)
    audit.record(session, "upload.create", actor=user, object_type="upload", object_id=upload_id, case_id=case.id,
                 details={"size": size, **({"duplicate_of": [s.id for s in same]} if same else {})})
    return upload


_OPEN_STATES = (UploadState.RECEIVING, UploadState.STORING)


def fail_upload(session: Session, upload_id: str, code: str, message: str) -> None:
    upload = session.get(Upload, upload_id)
    if upload is not None and upload.state in _OPEN_STATES:
        upload.state = UploadState.FAILED
        upload.error_code, upload.error_message = code, message
        upload.finished_at = utcnow()
        _end_preview(session, upload)
        audit.record(session, "upload.failed", actor_name=None, object_type="upload", object_id=upload_id,
                     case_id=upload.case_id, details={"code": code})


def expire_upload(session: Session, upload_id: str) -> None:
    upload = session.get(Upload, upload_id)
    if upload is not None and upload.state is UploadState.RECEIVING:
        upload.state = UploadState.EXPIRED
        upload.finished_at = utcnow()
        _end_preview(session, upload)


def cancel_upload(session: Session, upload_id: str, actor: User | None = None) -> None:
    """The upload was deleted (tus DELETE): its quota reservation and its place among the user's
    open uploads are released at once."""
    upload = session.get(Upload, upload_id)
    if upload is not None and upload.state in _OPEN_STATES:
        upload.state = UploadState.CANCELLED
        upload.finished_at = utcnow()
        _end_preview(session, upload)
        audit.record(session, "upload.cancelled", actor=actor, object_type="upload", object_id=upload_id,
                     case_id=upload.case_id, details={"size": upload.size})


def mark_storing(session: Session, upload_id: str, code: str) -> None:
    """Every byte arrived and was verified, but object storage could not take the file yet."""
    upload = session.get(Upload, upload_id)
    if upload is not None and upload.state is UploadState.RECEIVING:
        upload.state = UploadState.STORING
        upload.error_code = code
        audit.record(session, "upload.storing", actor_name=None, object_type="upload", object_id=upload_id,
                     case_id=upload.case_id, details={"code": code})


def _end_preview(session: Session, upload: Upload) -> None:
    """An upload that ends without its original leaves no preview behind as if it were a slide."""
    slide = session.get(Slide, upload.slide_id) if upload.slide_id else None
    if slide is not None and slide.original_id is None and slide.preview_level is not None:
        slide.status = SlideStatus.FAILED
        slide.reject_code = "upload_incomplete"


def expire_stale_uploads(session: Session, now: dt.datetime | None = None) -> int:
    """Uploads still 'receiving' after their expiry stop counting against the quota."""
    now = now or utcnow()
    stale = list(session.scalars(select(Upload).where(Upload.state == UploadState.RECEIVING,
                                                      Upload.expires_at < now)))
    for upload in stale:
        upload.state = UploadState.EXPIRED
        upload.finished_at = now
        _end_preview(session, upload)
    return len(stale)


def complete_upload(session: Session, store: ObjectStore, upload_id: str, staged_file: str, sha256: str,
                    *, consume: bool = True) -> Slide:
    """Move a finished, verified upload into object storage and create its slide (idempotent).

    ``consume``: the store may take the file itself (a finished tus upload is deleted afterwards anyway).
    """
    upload = session.get(Upload, upload_id)
    if upload is None:
        raise NotFound("Unknown upload.")
    preview = session.get(Slide, upload.slide_id) if upload.slide_id is not None else None
    if preview is not None and (preview.original_id is not None or preview.preview_level is None):
        return preview
    # else: no slide yet, or only the uploader's preview (domain/slides/preview.py): the original joins it
    original = session.scalar(select(StoredOriginal).where(StoredOriginal.sha256 == sha256))
    if original is None or not store.exists(original.storage_key):
        key = original_key(sha256)
        # An earlier attempt may have stored the object and then failed (database, crash); with
        # ``consume`` on the local store it even took the staged file. A verified copy is enough.
        stored = _verified_copy(store, key, sha256, None)
        if stored is None:
            size = os.path.getsize(staged_file)
            # The tus server deletes the staged file only after this returns, so it may be taken over.
            store.put_file(key, staged_file, metadata={"filename": SAFE_NAME.sub("_", upload.filename)[:200]},
                           move=consume, sha256=sha256)
            stored = _verified_copy(store, key, sha256, size)
            if stored is None:
                raise IntegrityError(f"{key}: the stored object does not match the uploaded file")
        if original is None:
            original = StoredOriginal(sha256=sha256, size=stored.size, storage_key=key)
            session.add(original)
            session.flush()
    if preview is not None:
        slide = preview
        slide.original_id = original.id
    else:
        slide = Slide(uid=uuid.uuid4().hex, case_id=upload.case_id, original_id=original.id,
                      label=_next_label(session, upload.case_id), stain=upload.stain,
                      original_filename=upload.filename, status=SlideStatus.INSPECTING, created_by_id=upload.user_id)
        session.add(slide)
    session.flush()
    upload.state = UploadState.COMPLETE
    upload.error_code = None
    upload.finished_at = utcnow()
    upload.slide_id = slide.id
    job = jobs.create(session, "ingest", slide_id=slide.id)
    audit.record(session, "slide.uploaded", actor=session.get(User, upload.user_id), object_type="slide",
                 object_id=slide.id, case_id=slide.case_id, details={"sha256": sha256, "size": original.size})
    session.commit()
    jobs.enqueue(job.id)
    return slide


def _verified_copy(store: ObjectStore, key: str, sha256: str, size: int | None) -> ObjectInfo | None:
    """The object under ``key`` if the store reports the expected SHA-256 (and size): the store
    recorded the digest of the bytes it received, and S3 checks each part's signed payload
    hash, so the staged file may go. None when there is no such object (or not that one)."""
    try:
        info = store.stat(key)
    except ObjectNotFound:
        return None
    if (info.sha256 or "").lower() != sha256 or (size is not None and info.size != size):
        log.warning("stored object does not match the upload", extra={"key": key})
        return None
    return info


def add_local_file(session: Session, store: ObjectStore, case: Case, user: User, path: Path,
                   stain: str = "H&E", *, consume: bool = False) -> Slide:
    """Ingest a file already on this machine (demo data, imports) through the same path as an upload."""
    digest = file_sha256(path)
    upload = Upload(id=uuid.uuid4().hex, case_id=case.id, user_id=user.id, institution_id=case.institution_id,
                    filename=path.name, size=path.stat().st_size, stain=stain, client_sha256=digest)
    session.add(upload)
    session.flush()
    return complete_upload(session, store, upload.id, str(path), digest, consume=consume)


def _next_label(session: Session, case_id: int) -> str:
    count = session.scalar(select(func.count(Slide.id)).where(Slide.case_id == case_id)) or 0
    return f"S{count + 1}"
