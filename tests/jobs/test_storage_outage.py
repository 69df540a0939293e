"""A storage outage is not the slide's fault: it consumes no attempt, the job waits with capped
exponential back-off, the slide says it is waiting for storage, and only an outage longer than
STORAGE_OUTAGE_HORIZON_SECONDS fails it (with that reason). A failed slide can be retried by a
technician of its centre or an admin, from the case page and the API.

Outages are simulated here by a handler raising StorageUnavailable under a controlled clock;
tests/faults/ stops a real Ceph gateway.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from pathology_hub.models import AuditEvent, Job, JobState, Slide, SlideStatus
from storage.errors import StorageUnavailable


@pytest.fixture
def clock(monkeypatch):
    """jobs.utcnow under test control."""
    from pathology_hub.domain import jobs
    now = [dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.timezone.utc)]
    monkeypatch.setattr(jobs, "utcnow", lambda: now[0])

    class Clock:
        def advance(self, seconds: float) -> None:
            now[0] += dt.timedelta(seconds=seconds)

        @property
        def now(self) -> dt.datetime:
            return now[0]
    return Clock()


def _run(db, job_id: int) -> str:
    from pathology_hub.db import SessionLocal
    from pathology_hub.domain import jobs
    result = jobs.run(lambda: SessionLocal.session_factory(), job_id)
    db.expire_all()
    return result


def _outage_handler(monkeypatch, failures: list[int]):
    """The tile handler raises StorageUnavailable while failures[0] > 0, then succeeds."""
    from pathology_hub.domain import jobs

    def handler(session, job, ctx):
        if failures[0] > 0:
            failures[0] -= 1
            raise StorageUnavailable("s3://127.0.0.1:1/x: put: backend unavailable after 4 attempt(s)")
        slide = session.get(Slide, job.slide_id)
        slide.status = SlideStatus.READY
        session.commit()
    monkeypatch.setitem(jobs._HANDLERS, "tile", handler)


def test_outage_consumes_no_attempt_and_backs_off_exponentially_to_the_cap(
        world, tiling_slide, clock, queued, monkeypatch, client_for):
    monkeypatch.setenv("STORAGE_OUTAGE_MAX_DELAY_SECONDS", "60")
    failures = [9]
    _outage_handler(monkeypatch, failures)
    job = world.scalar(select(Job).where(Job.slide_id == tiling_slide.id))
    delays = []
    for _ in range(9):  # more failures than max_attempts (3): not one attempt is used up
        assert _run(world, job.id) == "waiting-for-storage"
        job = world.get(Job, job.id)
        assert job.state is JobState.QUEUED and job.attempts == 0
        delays.append(queued[-1][1])
        clock.advance(delays[-1])
    assert delays == [2, 2, 4, 8, 16, 32, 60, 60, 60]  # doubles with the outage's length, capped

    # Meanwhile the slide says so truthfully (API and case page, both languages).
    slide = client_for("tech").get(f"/api/v1/slides/{tiling_slide.id}").json
    assert slide["status"] == "tiling" and slide["waiting_for_storage"]["since"]
    assert slide["waiting_for_storage"]["next_attempt_at"]
    assert "resumes by itself" in slide["waiting_for_storage"]["message"]
    page = client_for("tech").get(f"/cases/{tiling_slide.case_id}").get_data(as_text=True)
    assert "waiting for storage" in page
    zh = client_for("tech")
    zh.post("/lang", data={"lang": "zh_CN", "csrf_token": zh.csrf})
    assert "等待存储恢复" in zh.get(f"/cases/{tiling_slide.case_id}").get_data(as_text=True)

    assert _run(world, job.id) == "done"  # storage is back
    job = world.get(Job, job.id)
    assert job.state is JobState.DONE and job.attempts == 1
    assert job.storage_wait_since is None and job.retry_at is None
    assert world.get(Slide, tiling_slide.id).status is SlideStatus.READY


def test_a_retry_run_shows_the_wait_until_storage_took_a_write(world, tiling_slide, queued, monkeypatch,
                                                              client_for):
    from pathology_hub.domain import jobs
    _outage_handler(monkeypatch, [1])
    job = world.scalar(select(Job).where(Job.slide_id == tiling_slide.id))
    assert _run(world, job.id) == "waiting-for-storage"
    api = client_for("tech")
    seen = []

    def retry_run(session, job, ctx):
        seen.append(api.get(f"/api/v1/slides/{tiling_slide.id}").json["waiting_for_storage"])
        ctx.storage_ok()  # e.g. the preview manifest was stored
        seen.append(api.get(f"/api/v1/slides/{tiling_slide.id}").json["waiting_for_storage"])
    monkeypatch.setitem(jobs._HANDLERS, "tile", retry_run)
    assert _run(world, job.id) == "done"
    assert seen[0] is not None and seen[1] is None


def test_outage_beyond_the_horizon_fails_with_that_reason(world, tiling_slide, clock, queued, monkeypatch,
                                                         client_for):
    monkeypatch.setenv("STORAGE_OUTAGE_HORIZON_SECONDS", "600")
    monkeypatch.setenv("STORAGE_OUTAGE_MAX_DELAY_SECONDS", "120")
    _outage_handler(monkeypatch, [10**6])
    job = world.scalar(select(Job).where(Job.slide_id == tiling_slide.id))
    runs = 0
    while (result := _run(world, job.id)) == "waiting-for-storage":
        runs += 1
        clock.advance(queued[-1][1])
        assert runs < 50
    assert result == "failed"
    job = world.get(Job, job.id)
    assert job.state is JobState.FAILED and job.attempts == 0
    assert "object storage unreachable for 10 min" in job.error
    slide = world.get(Slide, tiling_slide.id)
    assert slide.status is SlideStatus.FAILED and slide.reject_code == "storage_unavailable"
    shown = client_for("tech").get(f"/api/v1/slides/{slide.id}").json
    assert "unreachable for too long" in shown["reject_message"] and shown["retry_url"]


def test_an_outage_after_storage_came_back_counts_afresh(world, tiling_slide, clock, queued, monkeypatch):
    """A run that wrote to storage ended the old outage: a new one does not inherit its minutes."""
    from pathology_hub.domain import jobs
    monkeypatch.setenv("STORAGE_OUTAGE_HORIZON_SECONDS", "1800")

    def works_then_down(session, job, ctx):
        ctx.storage_ok()  # the preview manifest was stored
        clock.advance(300)  # five minutes of tiling, then storage goes away
        raise StorageUnavailable("gone")
    monkeypatch.setitem(jobs._HANDLERS, "tile", works_then_down)
    job = world.scalar(select(Job).where(Job.slide_id == tiling_slide.id))
    job.storage_wait_since = clock.now - dt.timedelta(minutes=29)
    world.commit()
    assert _run(world, job.id) == "waiting-for-storage"  # not "failed": 29 + 5 min is not one outage
    job = world.get(Job, job.id)
    assert job.storage_wait_since.replace(tzinfo=dt.timezone.utc) == clock.now


def test_reaper_leaves_a_waiting_job_alone_until_its_retry_is_overdue(world, tiling_slide, clock, queued,
                                                                      monkeypatch):
    from pathology_hub.domain import jobs
    monkeypatch.setenv("STORAGE_OUTAGE_MAX_DELAY_SECONDS", "60")
    _outage_handler(monkeypatch, [1])
    job = world.scalar(select(Job).where(Job.slide_id == tiling_slide.id))
    assert _run(world, job.id) == "waiting-for-storage"
    queued.clear()
    now = jobs.utcnow()
    assert jobs.reap(world, now + dt.timedelta(minutes=10)) == [job.id]  # its message was lost
    assert jobs.reap(world, now + dt.timedelta(seconds=30)) == []


def test_retry_a_failed_slide_from_the_api(world, tiling_slide, queued, client_for):
    db = world
    slide = db.get(Slide, tiling_slide.id)
    slide.status, slide.reject_code, slide.reject_message = SlideStatus.FAILED, "tiling_failed", "boom"
    db.commit()

    refused = client_for("clinician").post(f"/api/v1/slides/{slide.id}/retry")
    assert refused.status_code == 403 and refused.json["error"]["code"] == "retry_not_allowed"
    assert client_for("tech2").post(f"/api/v1/slides/{slide.id}/retry").status_code == 404  # other centre
    resp = client_for("tech").post(f"/api/v1/slides/{slide.id}/retry")
    assert resp.status_code == 202, resp.json
    assert resp.json["status"] == "tiling" and resp.json["reject_code"] is None
    db.expire_all()
    new_job = db.scalars(select(Job).where(Job.slide_id == slide.id).order_by(Job.id.desc())).first()
    assert new_job.kind == "tile" and new_job.state is JobState.QUEUED and queued[-1] == (new_job.id, None)
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "slide.retry"))
    assert event is not None and event.object_id == str(slide.id)

    again = client_for("tech").post(f"/api/v1/slides/{slide.id}/retry")
    assert again.status_code == 409 and again.json["error"]["code"] == "slide_not_failed"
    zh = client_for("admin")
    zh.post("/lang", data={"lang": "zh_CN", "csrf_token": zh.csrf})
    again = zh.post(f"/api/v1/slides/{slide.id}/retry")
    assert again.status_code == 409 and "失败" in again.json["error"]["message"]

    slide = db.get(Slide, slide.id)
    slide.status = SlideStatus.FAILED
    db.commit()
    assert client_for("admin").post(f"/api/v1/slides/{slide.id}/retry").status_code == 202  # admin may too

    spec = client_for(None).get("/api/v1/openapi.json").json["paths"]["/api/v1/slides/{slide_id}/retry"]["post"]
    assert {"202", "403", "404", "409"} <= set(map(str, spec["responses"]))
    assert "slide_not_failed" in spec["responses"]["409"]["description"]
    assert "retry_not_allowed" in spec["responses"]["403"]["description"]


def test_retry_button_on_the_case_page(world, tiling_slide, queued, client_for):
    db = world
    slide = db.get(Slide, tiling_slide.id)
    slide.status, slide.reject_code, slide.reject_message = SlideStatus.FAILED, "inspection_failed", "boom"
    slide.description = "{}"
    db.commit()
    assert 'data-testid="retry-slide"' not in client_for("clinician").get(f"/cases/{slide.case_id}").get_data(
        as_text=True)
    tech = client_for("tech")
    page = tech.get(f"/cases/{slide.case_id}").get_data(as_text=True)
    assert 'data-testid="retry-slide"' in page and f'action="/slides/{slide.id}/retry"' in page
    no_token = tech.http.post(f"/slides/{slide.id}/retry")
    assert no_token.status_code == 400  # CSRF
    resp = tech.http.post(f"/slides/{slide.id}/retry", data={"csrf_token": tech.csrf})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/cases/{slide.case_id}")
    db.expire_all()
    assert db.get(Slide, slide.id).status is SlideStatus.INSPECTING  # the stage that failed runs again
    assert db.scalars(select(Job).where(Job.slide_id == slide.id).order_by(Job.id.desc())).first().kind == "ingest"
    page = tech.get(f"/cases/{slide.case_id}").get_data(as_text=True)
    assert "being processed again" in page and 'data-testid="retry-slide"' not in page
