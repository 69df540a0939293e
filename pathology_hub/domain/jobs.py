"""Durable background jobs on top of Huey.

Huey does not acknowledge tasks: a worker killed mid-task loses it.  So the
``jobs`` table is the source of truth: a worker *claims* a job with a lease,
renews the lease with heartbeats while it works, and a reaper re-queues jobs
whose lease expired.  Handlers must be idempotent (tile writes are), so a job
delivered twice finishes once: the second claim fails while the first holds
the lease, and a finished job is never claimed again.

Object storage being unreachable (``StorageUnavailable``) is not the job's
fault: such a run gives its attempt back and the job waits (state *queued*,
``storage_wait_since`` set) with exponential back-off capped at
``STORAGE_OUTAGE_MAX_DELAY_SECONDS``.  Only when storage stays away for
``STORAGE_OUTAGE_HORIZON_SECONDS`` (default 30 minutes) does the job fail, with
a reason saying so; a technician can retry it once storage is back.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
from typing import Any, Callable

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from storage.errors import StorageUnavailable

from ..models import Job, JobState, as_utc, utcnow

log = logging.getLogger("pathology_hub.jobs")

LEASE = dt.timedelta(seconds=int(os.environ.get("JOB_LEASE_SECONDS", "60")))
Handler = Callable[[Session, Job, "JobContext"], None]
_HANDLERS: dict[str, Handler] = {}


#: First pause after a storage outage hit a job; doubles with the outage's length up to the cap.
STORAGE_WAIT_BASE_SECONDS = 2.0


def storage_outage_horizon() -> dt.timedelta:
    """How long a job waits for object storage before it is marked failed (read per call: tests set it)."""
    return dt.timedelta(seconds=float(os.environ.get("STORAGE_OUTAGE_HORIZON_SECONDS", "1800")))


def storage_wait_max_delay() -> float:
    """The longest pause between two attempts while storage is down (bounds the delay after it returns)."""
    return max(STORAGE_WAIT_BASE_SECONDS, float(os.environ.get("STORAGE_OUTAGE_MAX_DELAY_SECONDS", "60")))


def storage_wait_delay(waited: dt.timedelta) -> float:
    """Next pause: as long as the outage has lasted so far (so pauses double), within [base, cap]."""
    return min(storage_wait_max_delay(), max(STORAGE_WAIT_BASE_SECONDS, waited.total_seconds()))


class JobFailed(Exception):
    """A permanent failure with a message fit to show on the case page (no retry helps)."""


class LeaseLost(Exception):
    """Another worker took the job over (our lease expired); stop without writing results."""


def register_handler(kind: str, fn: Handler) -> None:
    """Run ``fn`` for jobs of ``kind`` (called by ``bootstrap.py``, never by an import)."""
    _HANDLERS[kind] = fn


#: How a job reaches a worker: ``(job_id, delay_seconds | None)``. Set by ``bootstrap.py``
#: (the Huey task); the domain never imports the queue.
_ENQUEUE: list[Callable[[int, float | None], None]] = []


def set_enqueuer(fn: Callable[[int, float | None], None]) -> None:
    _ENQUEUE[:] = [fn]


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def create(session: Session, kind: str, *, slide_id: int | None = None, max_attempts: int = 3) -> Job:
    job = Job(kind=kind, slide_id=slide_id, max_attempts=max_attempts)
    session.add(job)
    session.flush()
    return job


def claim(session: Session, job_id: int, owner: str, now: dt.datetime | None = None) -> Job | None:
    """Atomically take a queued job, or a running one whose lease expired."""
    now = now or utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id,
               or_(Job.state == JobState.QUEUED, (Job.state == JobState.RUNNING) & (Job.lease_until < now)))
        .values(state=JobState.RUNNING, lease_owner=owner, lease_until=now + LEASE, heartbeat_at=now,
                attempts=Job.attempts + 1)
    )
    session.commit()
    if result.rowcount != 1:
        return None
    return session.get(Job, job_id, populate_existing=True)


class JobContext:
    """Given to handlers: report progress (which renews the lease) and read the checkpoint."""

    def __init__(self, session_factory: Callable[[], Session], job_id: int, owner: str) -> None:
        self._factory = session_factory
        self.job_id = job_id
        self.owner = owner
        self._last_beat = utcnow()
        self._storage_ok = False

    def storage_ok(self) -> None:
        """The handler just wrote to object storage: a storage wait this job was in is over.

        Until then a retried job still counts as waiting (the case page says so), and its
        outage keeps counting towards the horizon.
        """
        if self._storage_ok:
            return
        self._storage_ok = True
        session = self._factory()
        try:
            session.execute(update(Job).where(Job.id == self.job_id, Job.lease_owner == self.owner,
                                              Job.storage_wait_since.is_not(None))
                            .values(storage_wait_since=None, retry_at=None))
            session.commit()
        finally:
            session.close()

    def heartbeat(self, progress: dict[str, Any] | None = None, *, force: bool = False) -> None:
        now = utcnow()
        if not force and progress is not None and (now - self._last_beat).total_seconds() < 1.0:
            return
        self._last_beat = now
        session = self._factory()
        try:
            values: dict[str, Any] = {"lease_until": now + LEASE, "heartbeat_at": now}
            if progress is not None:
                values["progress"] = json.dumps(progress)
            result = session.execute(update(Job).where(Job.id == self.job_id, Job.lease_owner == self.owner,
                                                       Job.state == JobState.RUNNING).values(**values))
            session.commit()
        finally:
            session.close()
        if result.rowcount != 1:
            raise LeaseLost(f"job {self.job_id} was taken over by another worker")


def run(session_factory: Callable[[], Session], job_id: int, owner: str | None = None) -> str:
    """Claim and run one job; returns its final state name. Called by the Huey task."""
    owner = owner or worker_id()
    session = session_factory()
    try:
        job = claim(session, job_id, owner)
        if job is None:
            return "not-claimed"
        fn = _HANDLERS[job.kind]
        ctx = JobContext(session_factory, job_id, owner)
        try:
            fn(session, job, ctx)
        except LeaseLost:
            session.rollback()
            return "lease-lost"
        except JobFailed as exc:
            session.rollback()
            _finish(session, job_id, owner, JobState.FAILED, str(exc))
            _on_failure(session, job_id)
            return "failed"
        except StorageUnavailable as exc:
            session.rollback()
            return _wait_for_storage(session, job_id, owner, exc)
        except Exception as exc:  # noqa: BLE001 - any crash is retried, bounded
            session.rollback()
            log.exception("job crashed", extra={"job_id": job_id, "kind": job.kind})
            job = session.get(Job, job_id, populate_existing=True)
            if job.attempts >= job.max_attempts:
                _finish(session, job_id, owner, JobState.FAILED, f"{type(exc).__name__}: {exc}"[:2000])
                _on_failure(session, job_id)
                return "failed"
            _finish(session, job_id, owner, JobState.QUEUED, f"attempt {job.attempts} failed: {exc}"[:2000])
            enqueue(job_id, delay=min(60, 2 ** job.attempts))
            return "retrying"
        _finish(session, job_id, owner, JobState.DONE, None)
        return "done"
    finally:
        session.close()


def _wait_for_storage(session: Session, job_id: int, owner: str, exc: StorageUnavailable) -> str:
    """Storage is down: give the attempt back and try again later, or fail once past the horizon.

    The outage counts from the first failed run; it is over once a run wrote to storage again
    (``JobContext.storage_ok``) or the job ended otherwise, so a later outage counts afresh.
    """
    now = utcnow()
    job = session.get(Job, job_id, populate_existing=True)
    since = as_utc(job.storage_wait_since) or now
    waited = now - since
    if waited >= storage_outage_horizon():
        minutes = round(waited.total_seconds() / 60)
        log.warning("storage outage outlasted the horizon", extra={"job_id": job_id, "kind": job.kind,
                                                                     "waited_seconds": round(waited.total_seconds())})
        session.execute(update(Job).where(Job.id == job_id, Job.lease_owner == owner).values(
            state=JobState.FAILED, error=f"object storage unreachable for {minutes} min: {exc}"[:2000],
            lease_until=None, lease_owner=None, attempts=Job.attempts - 1, storage_wait_since=since,
            retry_at=None))
        session.commit()
        _on_failure(session, job_id)
        return "failed"
    delay = storage_wait_delay(waited)
    log.warning("storage unavailable; job waits", extra={"job_id": job_id, "kind": job.kind,
                                                         "retry_in_seconds": round(delay, 1)})
    session.execute(update(Job).where(Job.id == job_id, Job.lease_owner == owner).values(
        state=JobState.QUEUED, error=f"waiting for object storage: {exc}"[:2000], lease_until=None,
        lease_owner=None, attempts=Job.attempts - 1, storage_wait_since=since,
        retry_at=now + dt.timedelta(seconds=delay)))
    session.commit()
    enqueue(job_id, delay=delay)
    return "waiting-for-storage"


def _finish(session: Session, job_id: int, owner: str, state: JobState, error: str | None) -> None:
    """End a run that was not about storage: any storage wait is over."""
    session.execute(update(Job).where(Job.id == job_id, Job.lease_owner == owner)
                    .values(state=state, error=error, lease_until=None, lease_owner=None,
                            storage_wait_since=None, retry_at=None))
    session.commit()


#: Called with (session, job) when a job fails for good, so the domain can mark its object.
_FAILURE_HOOKS: dict[str, Callable[[Session, Job], None]] = {}


def register_failure_hook(kind: str, fn: Callable[[Session, Job], None]) -> None:
    """Call ``fn`` when a job of ``kind`` fails for good (registered by ``bootstrap.py``)."""
    _FAILURE_HOOKS[kind] = fn


def _on_failure(session: Session, job_id: int) -> None:
    job = session.get(Job, job_id, populate_existing=True)
    hook = _FAILURE_HOOKS.get(job.kind)
    if hook:
        hook(session, job)
        session.commit()


def reap(session: Session, now: dt.datetime | None = None) -> list[int]:
    """Re-queue jobs whose worker died (lease expired) or whose queue message was lost.

    A job waiting for storage is stale only once its planned retry is a minute overdue
    (the delayed queue message was lost, e.g. with an in-memory queue).
    """
    now = now or utcnow()
    stale_queue = now - dt.timedelta(minutes=5)
    ids = list(session.scalars(select(Job.id).where(or_(
        (Job.state == JobState.RUNNING) & (Job.lease_until < now),
        (Job.state == JobState.QUEUED) & Job.retry_at.is_(None) & (Job.updated_at < stale_queue),
        (Job.state == JobState.QUEUED) & (Job.retry_at < now - dt.timedelta(minutes=1))))))
    for job_id in ids:
        job = session.get(Job, job_id)
        if job.state is JobState.RUNNING and job.attempts >= job.max_attempts:
            job.state = JobState.FAILED
            job.error = (job.error or "") + " worker died on the last attempt"
            session.commit()
            _on_failure(session, job_id)
            continue
        job.updated_at = now
        job.retry_at = None  # the planned retry's message is overdue: this one replaces it
        session.commit()
        enqueue(job_id)
    return ids


def progress_of(job: Job) -> dict[str, Any]:
    try:
        return json.loads(job.progress or "{}")
    except ValueError:
        return {}


def enqueue(job_id: int, delay: float | None = None) -> None:
    if not _ENQUEUE:
        raise RuntimeError("jobs cannot be queued before pathology_hub.bootstrap.wire() ran")
    _ENQUEUE[0](job_id, delay)


def lease_expired(job: Job, now: dt.datetime | None = None) -> bool:
    lease = as_utc(job.lease_until)
    return lease is not None and lease < (now or utcnow())
