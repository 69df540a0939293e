"""The frozen-section lane in Chromium, in zh-CN and in English: the paged pathologist sees the
alarm banner on every page with the minutes clock (amber at 17 of 20 minutes), a tone is generated
once sound is on, and acknowledging takes the alarm away; the admin's on-call roster page refuses
a shift that ends before it starts in the page's language; the turnaround dashboard shows frozen
sections in minutes.  Screenshots go to test-artifacts/ (and /work/notes/shots/frozen when present).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest

from pathology_hub.domain import consultations as svc
from pathology_hub.models import Priority, utcnow
from pathology_hub.models.consultations import ConsultationState as S
from tests.browser_helpers import login, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TEXT = {
    "zh-CN": {"locale": "zh_CN", "banner": "术中冰冻", "clock": "冰冻 17 / 20 分钟", "fallback": "无人值班",
              "end_error": "值班结束时间必须晚于开始时间", "dashboard": "术中冰冻（分钟）"},
    "en": {"locale": "en", "banner": "FROZEN SECTION", "clock": "Frozen 17 / 20 min", "fallback": "Nobody is on call",
           "end_error": "The shift must end after it starts", "dashboard": "Frozen sections, in minutes"},
}


def _shot(page, artifacts: Path, name: str) -> None:
    path = artifacts / name
    page.screenshot(path=str(path), full_page=True)
    notes = Path(os.environ.get("FROZEN_SHOTS_DIR", "/work/notes/shots/frozen"))
    if notes.is_dir():
        shutil.copy(path, notes / name)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_paged_pathologist_sees_alarm_and_clock_and_acknowledges(browser, live_server, world, users,
                                                                 make_consultation, artifacts, lang):
    text = TEXT[lang]
    for name in ("pathologist", "admin"):
        users[name].locale = text["locale"]
    c = make_consultation(S.DRAFT)
    c.priority = Priority.FROZEN
    world.commit()
    svc.submit(world, users["tech"], c, now=utcnow() - dt.timedelta(minutes=17, seconds=10),
               skip_slide_check_for_demo_seed=True)
    svc.assign(world, users["admin"], c, users["pathologist"].id)
    world.commit()
    context = browser.new_context(locale=lang, viewport={"width": 1280, "height": 900})
    try:
        page = login(context, live_server, "pathologist")
        banner = page.locator("[data-testid=frozen-alarm]")
        assert banner.is_visible()
        assert text["banner"] in banner.text_content() and text["fallback"] in banner.text_content()
        clock = banner.locator("[data-testid=frozen-clock]").first
        assert text["clock"] in clock.text_content() and clock.get_attribute("data-level") == "amber"
        # the worklist row has its clock too
        assert text["clock"] in page.locator("tr[data-consultation-id] [data-testid=frozen-clock]").first.text_content()
        page.click("[data-testid=frozen-sound]")
        wait_until(page, "Number(document.getElementById('frozen-alarm').getAttribute('data-beeps') || 0) >= 1", 5)
        _shot(page, artifacts, f"frozen-alarm-{lang}.png")
        # on another page (the request itself) the alarm is still there, with the clock
        page.goto(f"{live_server}/consultations/{c.id}")
        assert page.locator("[data-testid=frozen-alarm]").is_visible()
        assert text["clock"] in page.locator(".page-head [data-testid=frozen-clock]").text_content()
        _shot(page, artifacts, f"frozen-request-clock-{lang}.png")
        page.click("[data-testid=frozen-ack]")
        page.wait_for_load_state()
        assert not page.locator("[data-testid=frozen-alarm]").is_visible()
        page.goto(f"{live_server}/")
        assert not page.locator("[data-testid=frozen-alarm]").is_visible()
    finally:
        context.close()

    svc.accept(world, users["pathologist"], c)
    svc.mark_reported(world, users["pathologist"], c)  # signed at ~17 minutes: the dashboard counts it
    world.commit()
    context = browser.new_context(locale=lang, viewport={"width": 1280, "height": 900})
    try:
        page = login(context, live_server, "admin")
        page.goto(f"{live_server}/admin/on-call")
        page.fill("input[name=starts_at]", "2026-12-05T20:00")
        page.fill("input[name=ends_at]", "2026-12-05T08:00")
        page.click("[data-testid=on-call-add]")
        assert text["end_error"] in page.text_content(".flash")
        page.fill("input[name=ends_at]", "2026-12-06T08:00")
        page.fill("input[name=phone]", "+86 138 0000 0000")
        page.click("[data-testid=on-call-add]")
        assert page.locator("[data-testid=on-call-shift]").count() == 1
        _shot(page, artifacts, f"frozen-roster-{lang}.png")
        page.goto(f"{live_server}/admin/turnaround")
        assert text["dashboard"] in page.text_content("[data-testid=tat-frozen]")
        assert page.text_content("[data-testid=frozen-count]") == "1"
        assert page.text_content("[data-testid=frozen-within]") == "100.0%"
        _shot(page, artifacts, f"frozen-dashboard-{lang}.png")
    finally:
        context.close()
