"""The reaper on its own, under an injected clock (``jobs.reap(session, now)``, ``jobs.claim(..., now)``).

tests/jobs/test_worker_crash.py proves once, end to end, that a SIGKILLed worker's job comes
back (real worker processes, a real lease running out); these tests pin the rules that decide
*which* jobs the reaper takes back, without waiting for any lease: a running job whose lease
expired is queued again, a live lease is left alone, a job whose worker died on its last
attempt fails (and its slide says so), a queued job whose message was lost is sent again, and
the worker that lost its lease cannot write over the one that took the job over.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from pathology_hub.models import Job, JobState, Slide, SlideStatus

T0 = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def tile_job(world, tiling_slide) -> Job:
    """The queued tile job of a slide being tiled (tests/jobs/conftest.py)."""
    return world.scalar(select(Job).where(Job.slide_id == tiling_slide.id))


def _claim(job: Job, owner: str, at: dt.datetime) -> Job | None:
    """A worker's claim, in the worker's own session (as ``jobs.run`` does)."""
    from pathology_hub.db import SessionLocal
    from pathology_hub.domain import jobs
    session = SessionLocal.session_factory()
    try:
        claimed = jobs.claim(session, job.id, owner, now=at)
        if claimed is not None:
            session.expunge(claimed)
        return claimed
    finally:
        session.close()


def _claimed(db, job: Job, owner: str, at: dt.datetime) -> Job:
    claimed = _claim(job, owner, at)
    assert claimed is not None
    return claimed


def _reap(at: dt.datetime) -> list[int]:
    """One run of the reaper at ``at``, in its own session (as the periodic task does)."""
    from pathology_hub.db import SessionLocal
    from pathology_hub.domain import jobs
    session = SessionLocal.session_factory()
    try:
        return jobs.reap(session, at)
    finally:
        session.close()


def _state(db, job_id: int) -> Job:
    db.expire_all()
    return db.get(Job, job_id)


def test_a_running_job_whose_lease_expired_is_queued_again(world, tile_job, queued):
    from pathology_hub.domain import jobs
    _claimed(world, tile_job, "worker-a", T0)  # the worker then dies: no heartbeat renews the lease
    assert _reap(T0 + jobs.LEASE - dt.timedelta(seconds=1)) == []  # still within its lease
    assert queued == []
    assert _reap(T0 + jobs.LEASE + dt.timedelta(seconds=1)) == [tile_job.id]
    assert queued == [(tile_job.id, None)]
    job = _state(world, tile_job.id)
    assert job.state is JobState.RUNNING and job.attempts == 1  # the new worker's claim counts the attempt


def test_a_heartbeat_keeps_the_reaper_away(world, tile_job, queued, monkeypatch):
    from pathology_hub.db import SessionLocal
    from pathology_hub.domain import jobs
    _claimed(world, tile_job, "worker-a", T0)
    later = T0 + jobs.LEASE - dt.timedelta(seconds=5)
    monkeypatch.setattr(jobs, "utcnow", lambda: later)
    jobs.JobContext(lambda: SessionLocal.session_factory(), tile_job.id, "worker-a").heartbeat(force=True)
    assert _reap(T0 + jobs.LEASE + dt.timedelta(seconds=1)) == []  # renewed until later + LEASE
    assert _reap(later + jobs.LEASE + dt.timedelta(seconds=1)) == [tile_job.id]


def test_the_new_worker_takes_over_and_the_dead_one_cannot_write(world, tile_job, queued):
    from pathology_hub.db import SessionLocal
    from pathology_hub.domain import jobs
    _claimed(world, tile_job, "worker-a", T0)
    assert _claim(tile_job, "worker-b", T0 + dt.timedelta(seconds=1)) is None  # lease held
    expired = T0 + jobs.LEASE + dt.timedelta(seconds=1)
    assert _reap(expired) == [tile_job.id]
    taken = _claimed(world, tile_job, "worker-b", expired)
    assert taken.lease_owner == "worker-b" and taken.attempts == 2
    with pytest.raises(jobs.LeaseLost):  # the first worker was only paused, not dead: it must stop
        jobs.JobContext(lambda: SessionLocal.session_factory(), tile_job.id, "worker-a").heartbeat(force=True)


def test_a_worker_dying_on_the_last_attempt_fails_the_job_and_its_slide(world, tile_job, queued):
    from pathology_hub.domain import jobs
    at = T0
    for owner in ("worker-a", "worker-b", "worker-c"):  # max_attempts = 3, each worker dies
        _claimed(world, tile_job, owner, at)
        at += jobs.LEASE + dt.timedelta(seconds=1)
        reaped = _reap(at)
        assert reaped == [tile_job.id]
    job = _state(world, tile_job.id)
    assert job.state is JobState.FAILED and "worker died on the last attempt" in job.error
    assert queued == [(tile_job.id, None), (tile_job.id, None)]  # the third death is not re-queued
    slide = world.get(Slide, tile_job.slide_id)
    assert slide.status is SlideStatus.FAILED and slide.reject_code == "tiling_failed"
    assert _reap(at + dt.timedelta(hours=1)) == []  # a failed job stays failed


def test_a_queued_job_whose_message_was_lost_is_sent_again(world, tile_job, queued):
    created = _state(world, tile_job.id).updated_at.replace(tzinfo=dt.timezone.utc)
    assert _reap(created + dt.timedelta(minutes=4)) == []  # the worker may just be busy
    assert _reap(created + dt.timedelta(minutes=6)) == [tile_job.id]
    assert queued == [(tile_job.id, None)]
    # sent again just now: not again at the next minute's reaper run
    assert _reap(created + dt.timedelta(minutes=7)) == []
