"""Slides from upload to viewable pyramid.

The flow, each step idempotent so a retried job never duplicates data:

1. ``register_upload`` (tus creation): policy, size and quota checks, an ``Upload`` row.
2. ``complete_upload`` (last tus PATCH): the verified file moves into object storage
   under a key derived from its SHA-256 (stored once however often it is uploaded),
   a ``Slide`` appears in state *inspecting*, and an ``ingest`` job is queued.
3. ``ingest`` job: the file is opened in a sandboxed child process; a rejection is
   recorded with its reason, otherwise metadata, associated images and the quality
   report are stored and a ``tile`` job is queued.
4. ``tile`` job: the Deep Zoom pyramid is built into object storage; the slide is
   *ready* only when its manifest is stored.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import re
import shutil
import unicodedata
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from storage.base import ObjectInfo, ObjectStore
from storage.errors import IntegrityError, ObjectNotFound
from storage.verify import file_sha256

from ..models import (Case, Institution, Job, JobState, Slide, SlideStatus, StoredOriginal, Upload, UploadState, User,
                      as_utc, utcnow)
from . import audit, jobs, policy
from .errors import Conflict, DomainError, Forbidden, NotFound, TooLarge, ValidationFailed

log = logging.getLogger("pathology_hub.slides")

STAIN_MAX = 64
FILENAME_MAX = 255
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


# ---------------------------------------------------------------- object keys
def original_key(sha256: str) -> str:
    return f"originals/{sha256[:2]}/{sha256}"


def pyramid_prefix(slide: Slide) -> str:
    return f"pyramids/{slide.uid}/v{slide.pyramid_version}"


def slide_prefix(slide: Slide) -> str:
    return f"slides/{slide.uid}"


def associated_key(slide: Slide, name: str) -> str:
    return f"{slide_prefix(slide)}/associated/{SAFE_NAME.sub('_', name)}.png"


def thumbnail_key(slide: Slide) -> str:
    return f"{slide_prefix(slide)}/thumbnail.jpg"


def description_of(slide: Slide) -> dict[str, Any]:
    try:
        return json.loads(slide.description or "{}")
    except ValueError:
        return {}


def quality_of(slide: Slide) -> dict[str, Any]:
    try:
        return json.loads(slide.quality or "{}")
    except ValueError:
        return {}


# ---------------------------------------------------------------- uploads
def plain_text(value: str, *, field: str, limit: int) -> str:
    """Upload metadata shown to people (stain, file name): one line of printable text.

    Refused rather than silently cut, so the technician sees why: longer than ``limit``
    characters, or carrying control or invisible formatting characters (line breaks,
    NUL, bidirectional overrides that disguise a file name)."""
    if len(value) > limit:
        raise ValidationFailed(f"metadata {field} is longer than {limit} characters.",
                               code=f"invalid_{field}", details={"field": field, "max_length": limit})
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") for ch in value):
        raise ValidationFailed(f"metadata {field} contains control characters.",
                               code=f"invalid_{field}", details={"field": field})
    return value


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
        raise TooLarge(f"The file is {size / 2**30:.1f} GiB; the largest slide accepted is "
                       f"{max_bytes / 2**30:.1f} GiB.", code="slide_too_large")
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
        raise TooLarge(f"Your centre's storage quota ({quota_bytes / 2**30:.1f} GiB) would be exceeded: "
                       f"{used / 2**30:.1f} GiB used, this file is {size / 2**30:.1f} GiB.", code="quota_exceeded",
                       details={"quota_bytes": quota_bytes, "used_bytes": used, "size": size})
    if client_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", client_sha256):
        raise ValidationFailed("metadata sha256 must be 64 lower-case hex digits.", code="invalid_sha256")
    from .slide_facts import duplicates
    same = duplicates(session, case, client_sha256) if client_sha256 else []
    if same and not allow_duplicate:
        first = same[0]
        raise Conflict(f"This file is already slide {first.label} (id {first.id}) of this case; send metadata "
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
        audit.record(session, "upload.failed", actor_name=None, object_type="upload", object_id=upload_id,
                     case_id=upload.case_id, details={"code": code})


def expire_upload(session: Session, upload_id: str) -> None:
    upload = session.get(Upload, upload_id)
    if upload is not None and upload.state is UploadState.RECEIVING:
        upload.state = UploadState.EXPIRED
        upload.finished_at = utcnow()


def cancel_upload(session: Session, upload_id: str, actor: User | None = None) -> None:
    """The upload was deleted (tus DELETE): its quota reservation and its place among the user's
    open uploads are released at once."""
    upload = session.get(Upload, upload_id)
    if upload is not None and upload.state in _OPEN_STATES:
        upload.state = UploadState.CANCELLED
        upload.finished_at = utcnow()
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


def expire_stale_uploads(session: Session, now: dt.datetime | None = None) -> int:
    """Uploads still 'receiving' after their expiry stop counting against the quota."""
    now = now or utcnow()
    stale = list(session.scalars(select(Upload).where(Upload.state == UploadState.RECEIVING,
                                                      Upload.expires_at < now)))
    for upload in stale:
        upload.state = UploadState.EXPIRED
        upload.finished_at = now
    return len(stale)


def complete_upload(session: Session, store: ObjectStore, upload_id: str, staged_file: str, sha256: str,
                    *, consume: bool = True) -> Slide:
    """Move a finished, verified upload into object storage and create its slide (idempotent).

    ``consume``: the store may take the file itself (a finished tus upload is deleted afterwards anyway).
    """
    upload = session.get(Upload, upload_id)
    if upload is None:
        raise NotFound("Unknown upload.")
    if upload.slide_id is not None:
        return session.get(Slide, upload.slide_id)
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


# ---------------------------------------------------------------- worker-side files
def cache_dir() -> Path:
    from .. import runtime
    path = runtime.settings().instance_path / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cached_original_path(original: StoredOriginal, filename: str) -> Path:
    return cache_dir() / "originals" / original.sha256 / (SAFE_NAME.sub("_", filename) or "slide")


def local_original_if_present(store: ObjectStore, original: StoredOriginal, filename: str) -> Path | None:
    """The original's local file when this machine already has one, without downloading it.

    Used where fetching a whole original would be out of all proportion (one on-demand tile).
    """
    local = getattr(store, "local_path", None)
    if callable(local):
        path = Path(local(original.storage_key))
        if path.exists():
            return path
    target = _cached_original_path(original, filename)
    if target.exists() and target.stat().st_size == original.size:
        return target
    return None


def local_original(store: ObjectStore, original: StoredOriginal, filename: str) -> Path:
    """A local file of the original for native readers (OpenSlide needs a path).

    The local-folder backend already has one; other backends are downloaded once
    into the worker's cache, verified against the recorded SHA-256.
    """
    present = local_original_if_present(store, original, filename)
    if present is not None:
        return present
    target = _cached_original_path(original, filename)
    target_dir = target.parent
    target_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".part")
    import hashlib
    digest = hashlib.sha256()
    with open(tmp, "wb") as fh:
        for chunk in store.open_stream(original.storage_key):
            digest.update(chunk)
            fh.write(chunk)
    if digest.hexdigest() != original.sha256:
        tmp.unlink(missing_ok=True)
        from storage.errors import IntegrityError
        raise IntegrityError(f"original {original.sha256[:12]}… does not match its recorded SHA-256")
    os.replace(tmp, target)
    return target


def openable_path(store: ObjectStore, slide: Slide) -> Path:
    """The path OpenSlide opens: the original, its unpacked archive, or its converted photo."""
    path = local_original(store, slide.original, slide.original_filename)
    desc = description_of(slide)
    if desc.get("kind") == "photo":
        return _photo_as_tiff(path, slide.original.sha256)
    if desc.get("openable_path"):
        base = cache_dir() / "unpacked" / slide.original.sha256
        target = base / desc["openable_path"]
        if not target.exists():
            from ..slides import safe_extract_zip
            shutil.rmtree(base, ignore_errors=True)
            base.mkdir(parents=True, exist_ok=True)
            safe_extract_zip(path, base, name="slide")
        return target
    return path


def _photo_as_tiff(path: Path, sha256: str) -> Path:
    """Camera photos become a tiled TIFF that OpenSlide reads as generic-tiff."""
    target = cache_dir() / "photos" / f"{sha256}.tiff"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    from ..slides.photo import photo_to_tiled_tiff
    photo_to_tiled_tiff(path, target)
    return target


# ---------------------------------------------------------------- jobs
def _live_slide(session: Session, job: Job) -> Slide | None:
    """The job's slide, or None when it was deleted meanwhile (then the job has nothing to do)."""
    slide = session.get(Slide, job.slide_id)
    return None if slide is None or slide.deleted_at is not None else slide


def run_ingest(session: Session, job: Job, ctx: jobs.JobContext) -> None:
    from .. import runtime
    from ..slides import SlideRejected, assess_quality, extract_associated_images, inspect_slide, make_thumbnail
    from PIL import Image

    store = runtime.store()
    slide = _live_slide(session, job)
    if slide is None:
        return
    path = local_original(store, slide.original, slide.original_filename)
    ctx.heartbeat({"phase": "inspecting"}, force=True)
    unpack_dir = cache_dir() / "unpacked" / slide.original.sha256
    try:
        desc = inspect_slide(path, extract_to=unpack_dir)
    except SlideRejected as exc:
        slide.status = SlideStatus.REJECTED
        slide.reject_code, slide.reject_message = exc.code, exc.message
        audit.record(session, "slide.rejected", object_type="slide", object_id=slide.id, case_id=slide.case_id,
                     details={"code": exc.code})
        session.commit()
        return
    slide.description = json.dumps(desc.to_dict())
    session.commit()
    source = openable_path(store, slide)
    thumb = make_thumbnail(source, (1024, 1024))
    store.put_bytes(thumbnail_key(slide), thumb, content_type="image/jpeg")
    ctx.storage_ok()
    for name, data in extract_associated_images(source).items():
        store.put_bytes(associated_key(slide, name), data, content_type="image/png")
    report = assess_quality(Image.open(io.BytesIO(thumb)), desc)
    slide.quality = json.dumps(report.to_dict())
    slide.status = SlideStatus.TILING
    tile_job = jobs.create(session, "tile", slide_id=slide.id)
    session.commit()
    jobs.enqueue(tile_job.id)


def run_tiling(session: Session, job: Job, ctx: jobs.JobContext) -> None:
    from .. import runtime
    from ..tiling import TilingError, build_pyramid

    store = runtime.store()
    slide = _live_slide(session, job)
    if slide is None:
        return
    source = openable_path(store, slide)

    def progress(p) -> None:
        if p.phase == "preview":  # reported right after the preview manifest was stored
            ctx.storage_ok()
        ctx.heartbeat({"phase": p.phase, "tiles_done": p.tiles_done, "tiles_total": p.tiles_total,
                       "level": p.level, "eta_seconds": p.eta_seconds,
                       "elapsed_seconds": round(p.elapsed_seconds, 1)}, force=p.phase != "levels")

    try:
        result = build_pyramid(str(source), store, pyramid_prefix(slide), progress=progress)
    except TilingError as exc:
        raise jobs.JobFailed(str(exc)) from exc
    ctx.heartbeat({"phase": "done", "tiles_done": result.tiles_total, "tiles_total": result.tiles_total,
                   "seconds": round(result.seconds, 1)}, force=True)
    slide.status = SlideStatus.READY
    audit.record(session, "slide.ready", object_type="slide", object_id=slide.id, case_id=slide.case_id,
                 details={"tiles": result.tiles_total, "seconds": round(result.seconds, 1)})
    session.commit()


#: reject_code of a slide whose job gave up because object storage stayed unreachable past the horizon.
STORAGE_UNAVAILABLE = "storage_unavailable"


def mark_job_failed(session: Session, job: Job) -> None:
    slide = session.get(Slide, job.slide_id)
    if slide is not None and slide.status in (SlideStatus.INSPECTING, SlideStatus.TILING):
        slide.status = SlideStatus.FAILED
        if job.storage_wait_since is not None:  # failed waiting for storage, not on the slide itself
            slide.reject_code = STORAGE_UNAVAILABLE
        else:
            slide.reject_code = "tiling_failed" if job.kind == "tile" else "inspection_failed"
        slide.reject_message = (job.error or "processing failed")[:2000]


def latest_job(session: Session, slide: Slide) -> Job | None:
    return session.scalar(select(Job).where(Job.slide_id == slide.id).order_by(Job.id.desc()).limit(1))


def storage_wait(job: Job | None) -> dict[str, Any] | None:
    """Since when the slide's job waits for object storage and when it tries next, or None."""
    if job is None or job.state not in (JobState.QUEUED, JobState.RUNNING) or job.storage_wait_since is None:
        return None
    return {"since": as_utc(job.storage_wait_since), "next_attempt_at": as_utc(job.retry_at)}


def retry_slide(session: Session, user: User, slide: Slide, ip: str | None = None) -> Job:
    """Send a failed slide through processing again (technician of its centre, or an admin).

    The stage that failed runs again: inspection when the ingest job failed, otherwise
    tiling, which resumes from the packs already stored. A conditional update makes two
    simultaneous retries start one job.
    """
    if not policy.can(user, "slide.retry", slide):
        policy.ensure(user, "slide.view", slide)  # hidden slides answer 404, as everywhere
        raise Forbidden("Only a technician of the slide's centre or an administrator can retry it.",
                        code="retry_not_allowed")
    if slide.status is not SlideStatus.FAILED:
        raise Conflict("Only a slide whose processing failed can be retried.", code="slide_not_failed")
    last = latest_job(session, slide)
    kind = "ingest" if (last is not None and last.kind == "ingest") or not description_of(slide) else "tile"
    status = SlideStatus.INSPECTING if kind == "ingest" else SlideStatus.TILING
    previous = {"reject_code": slide.reject_code}
    claimed = session.execute(update(Slide).where(Slide.id == slide.id, Slide.status == SlideStatus.FAILED)
                              .values(status=status, reject_code=None, reject_message=None))
    if claimed.rowcount != 1:
        session.rollback()
        raise Conflict("Only a slide whose processing failed can be retried.", code="slide_not_failed")
    job = jobs.create(session, kind, slide_id=slide.id)
    audit.record(session, "slide.retry", actor=user, object_type="slide", object_id=slide.id,
                 case_id=slide.case_id, ip=ip, details={"job": kind, **previous})
    session.commit()
    session.refresh(slide)
    jobs.enqueue(job.id)
    return job


def get_slide(session: Session, user: User, slide_id: int) -> Slide:
    slide = session.get(Slide, slide_id)
    if slide is None:
        raise NotFound("No such slide.")
    policy.ensure(user, "slide.view", slide)
    return slide
