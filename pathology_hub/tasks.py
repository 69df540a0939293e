"""Background tasks run by ``flask worker``.

The worker has no Flask context: tasks open database sessions from
``pathology_hub.db`` and the store from ``pathology_hub.runtime``. Each task first
makes sure the process is wired (``bootstrap.ensure_wired``), so a task also runs in
a bare ``python -c`` process. Only the wiring imports this module.
"""

from __future__ import annotations

import logging

from huey import crontab

from . import bootstrap, runtime, upload_server
from .db import SessionLocal, independent_session, session_scope
from .domain import audit_checkpoints, consultations, jobs, notifications, slide_facts, slides, tile_render
from .domain.report_documents import signing_identity
from .queue import huey

log = logging.getLogger("pathology_hub.tasks")


def _ensure_engine() -> None:
    bootstrap.ensure_wired()


@huey.task()
def ping_task(value: str) -> str:
    """Round-trip check that a worker consumes the queue."""
    return f"pong:{value}"


@huey.task()
def run_job_task(job_id: int) -> str:
    _ensure_engine()
    return jobs.run(lambda: SessionLocal.session_factory(), job_id)


@huey.periodic_task(crontab(minute="*"))
def reap_jobs_task() -> list[int]:
    """Every minute: re-queue jobs whose worker died."""
    _ensure_engine()
    with session_scope() as s:
        return jobs.reap(s)


@huey.periodic_task(crontab(minute="*/10"))
def cleanup_uploads_task() -> int:
    """Every ten minutes: remove expired partial uploads (nothing partial is ever a slide)."""
    _ensure_engine()
    removed = upload_server.server().cleanup_expired()
    with session_scope() as s:
        slides.expire_stale_uploads(s)
    return removed


@huey.periodic_task(crontab(minute="*"))
def store_pending_uploads_task() -> list[str]:
    """Every minute: hand fully received uploads to object storage if it was down when they
    finished (so they complete even when the uploading client went away)."""
    _ensure_engine()
    return upload_server.retry_pending_uploads()


@huey.periodic_task(crontab(minute="23"))
def purge_withdrawn_slides_task() -> list[int]:
    """Hourly: delete the stored objects of withdrawn slides past their retention period."""
    _ensure_engine()
    with independent_session() as session:
        return slide_facts.purge_withdrawn(session, runtime.store())


@huey.task()
def deliver_notifications_task(notification_ids: list[int]) -> int:
    """E-mail (when SMTP_URL is set) and gateway hooks for new in-app notifications."""
    _ensure_engine()
    with independent_session() as session:
        return notifications.deliver(session, notification_ids, runtime.settings().smtp_url,
                                     runtime.settings().base_url)


@huey.periodic_task(crontab(minute="*"))
def flag_overdue_task() -> list[int]:
    """Every minute: notify triage once about requests past their turnaround target."""
    _ensure_engine()
    with independent_session() as session:
        return consultations.flag_overdue(session)


@huey.task(expires=30, priority=10)
def render_tile_task(uid: str, version: int, level: int, col: int, row: int) -> bool:
    """A tile the viewer wants before the pipeline stored it (see domain/tile_render.py).

    Expires unstarted after 30 s: by then the viewer has retried and the pipeline
    has probably stored the tile itself.
    """
    _ensure_engine()
    with independent_session() as session:
        return tile_render.render_into_store(session, runtime.store(), uid, version, level, col, row)


@huey.periodic_task(crontab(minute="*"))
def audit_checkpoint_task() -> int | None:
    """Every minute: sign the audit chain's head when AUDIT_CHECKPOINT_MINUTES or _ENTRIES say it is due."""
    _ensure_engine()
    settings = runtime.settings()
    with independent_session() as session:
        try:
            cp = audit_checkpoints.checkpoint_if_due(session, signing_identity(),
                                                     every_minutes=settings.audit_checkpoint_minutes,
                                                     every_entries=settings.audit_checkpoint_entries)
        except audit_checkpoints.ChainBroken as exc:
            log.error("audit checkpoint refused: %s", exc)
            return None
        return cp.seq if cp is not None else None
