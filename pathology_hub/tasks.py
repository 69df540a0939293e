"""Background tasks run by ``flask worker``.

The worker has no Flask context: tasks open database sessions from
``pathology_hub.db`` and the store from ``pathology_hub.runtime``.
"""

from __future__ import annotations

import logging

from huey import crontab

from .queue import huey

log = logging.getLogger("pathology_hub.tasks")


def _ensure_engine() -> None:
    from . import runtime
    from .db import _engine, init_engine
    if _engine is None:
        init_engine(runtime.settings().database_url)
    from .domain import slides  # noqa: F401 - registers the ingest and tile job handlers


@huey.task()
def ping_task(value: str) -> str:
    """Round-trip check that a worker consumes the queue."""
    return f"pong:{value}"


@huey.task()
def run_job_task(job_id: int) -> str:
    _ensure_engine()
    from .db import SessionLocal
    from .domain import jobs
    return jobs.run(lambda: SessionLocal.session_factory(), job_id)


@huey.periodic_task(crontab(minute="*"))
def reap_jobs_task() -> list[int]:
    """Every minute: re-queue jobs whose worker died."""
    _ensure_engine()
    from .db import session_scope
    from .domain import jobs
    with session_scope() as s:
        return jobs.reap(s)


@huey.periodic_task(crontab(minute="*/10"))
def cleanup_uploads_task() -> int:
    """Every ten minutes: remove expired partial uploads (nothing partial is ever a slide)."""
    _ensure_engine()
    from .db import session_scope
    from .domain import slides
    from .domain.upload_server import server
    removed = server().cleanup_expired()
    with session_scope() as s:
        slides.expire_stale_uploads(s)
    return removed


@huey.periodic_task(crontab(minute="*"))
def store_pending_uploads_task() -> list[str]:
    """Every minute: hand fully received uploads to object storage if it was down when they
    finished (so they complete even when the uploading client went away)."""
    _ensure_engine()
    from .domain.upload_server import retry_pending_uploads
    return retry_pending_uploads()


@huey.periodic_task(crontab(minute="23"))
def purge_withdrawn_slides_task() -> list[int]:
    """Hourly: delete the stored objects of withdrawn slides past their retention period."""
    _ensure_engine()
    from . import runtime
    from .db import independent_session
    from .domain import slide_facts
    with independent_session() as session:
        return slide_facts.purge_withdrawn(session, runtime.store())


@huey.task()
def deliver_notifications_task(notification_ids: list[int]) -> int:
    """E-mail (when SMTP_URL is set) and gateway hooks for new in-app notifications."""
    _ensure_engine()
    from . import runtime
    from .db import independent_session
    from .domain import notifications
    with independent_session() as session:
        return notifications.deliver(session, notification_ids, runtime.settings().smtp_url,
                                     runtime.settings().base_url)


@huey.periodic_task(crontab(minute="*"))
def flag_overdue_task() -> list[int]:
    """Every minute: notify triage once about requests past their turnaround target."""
    _ensure_engine()
    from .db import independent_session
    from .domain import consultations
    with independent_session() as session:
        return consultations.flag_overdue(session)


@huey.task(expires=30, priority=10)
def render_tile_task(uid: str, version: int, level: int, col: int, row: int) -> bool:
    """A tile the viewer wants before the pipeline stored it (see domain/tile_render.py).

    Expires unstarted after 30 s: by then the viewer has retried and the pipeline
    has probably stored the tile itself.
    """
    _ensure_engine()
    from . import runtime
    from .db import independent_session
    from .domain import tile_render
    with independent_session() as session:
        return tile_render.render_into_store(session, runtime.store(), uid, version, level, col, row)


@huey.periodic_task(crontab(minute="*"))
def audit_checkpoint_task() -> int | None:
    """Every minute: sign the audit chain's head when AUDIT_CHECKPOINT_MINUTES or _ENTRIES say it is due."""
    _ensure_engine()
    from . import runtime
    from .db import independent_session
    from .domain import audit_checkpoints
    from .domain.report_documents import signing_identity
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
