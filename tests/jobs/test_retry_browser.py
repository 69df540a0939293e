"""The case page in a real browser: a slide waiting for storage says so, a failed slide has a
Retry button (rendered by case.js after its poll, posting the page's CSRF token), in zh-CN and en."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from pathology_hub.models import Job, JobState, Slide, SlideStatus, utcnow
from tests.browser_helpers import login, wait_until

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("locale,waiting,retry,again", [
    ("zh-CN", "等待存储恢复", "重试", "正在重新处理"),
    ("en", "waiting for storage", "Retry", "being processed again")])
def test_case_page_waiting_and_retry(world, tiling_slide, live_server, browser, monkeypatch, artifacts,
                                     locale, waiting, retry, again):
    from pathology_hub.domain import jobs
    monkeypatch.setattr(jobs, "enqueue", lambda job_id, delay=None: None)
    db = world
    job = db.scalar(select(Job).where(Job.slide_id == tiling_slide.id))
    job.storage_wait_since, job.retry_at = utcnow() - dt.timedelta(seconds=40), utcnow() + dt.timedelta(seconds=20)
    failed = Slide(uid="f" * 32, case_id=tiling_slide.case_id, original_id=tiling_slide.original_id, label="S2",
                   stain="HE", original_filename="b.svs", status=SlideStatus.FAILED,
                   reject_code="storage_unavailable", reject_message="object storage unreachable for 30 min",
                   description='{"width": 10}')
    db.add(failed)
    db.flush()
    db.add(Job(kind="tile", slide_id=failed.id, state=JobState.FAILED, attempts=0))
    db.commit()

    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})
    try:
        page = login(context, live_server, "tech")
        page.goto(f"{live_server}/cases/{tiling_slide.case_id}")
        wait_until(page, "document.querySelector('[data-testid=retry-slide]') && "
                         "document.querySelector('#slide-rows [data-role=status]').textContent.length > 0")
        page.wait_for_timeout(2500)  # one poll of case.js: the rows below are the script's, not the server's
        rows = page.inner_text("#slide-rows")
        assert waiting in rows and retry in rows, rows
        page.screenshot(path=str(artifacts / f"case-retry-{locale}.png"), full_page=True)
        page.click("[data-testid=retry-slide]")
        page.wait_for_url(f"{live_server}/cases/{tiling_slide.case_id}")
        wait_until(page, "document.querySelector('.flash')")
        assert again in page.inner_text("body")
        page.screenshot(path=str(artifacts / f"case-retried-{locale}.png"), full_page=True)
    finally:
        context.close()
    db.expire_all()
    assert db.get(Slide, failed.id).status is SlideStatus.TILING
