"""Reading a slide and its processing state for users, and sending a failed slide through
processing again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pathology_hub.domain import audit, jobs, policy
from pathology_hub.domain.errors import Conflict, Forbidden, NotFound
from pathology_hub.domain.slides.descriptions import description_of
from pathology_hub.models import Job, JobState, Slide, SlideStatus, User, as_utc


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
                              .values(status=status, reject_code=None, reject_message=None, reject_params=None))
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
