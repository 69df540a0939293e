"""In a real browser, in zh-CN and in English: an error with parameters on a page, the same
kind of error as JSON, and a notification, each in the reader's language (one catalogue)."""

from __future__ import annotations

import json

import pytest

from pathology_hub.domain import notifications
from pathology_hub.models.consultations import ConsultationState as S
from tests.browser_helpers import login, wait_until

TEXTS = {
    "zh-CN": {"flash": "代码为 COMM1 的机构已存在。", "json": "未找到。", "note": "更正报告：病例 DEMO-2026-001 第 2 版已取代第 1 版。原因：ER 阳性 / ER positive",
              "column": "报告语言"},
    "en": {"flash": "An institution with code COMM1 already exists.", "json": "Not found.",
           "note": "AMENDED RESULT: case DEMO-2026-001, version 2 replaces version 1", "column": "Report language"},
}


@pytest.mark.slow
@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_errors_and_notifications_in_the_readers_language(browser, live_server, world, users, make_consultation,
                                                          artifacts, locale):
    c = make_consultation(S.RETURNED, assignee="pathologist")
    notifications.notify(world, [users["admin"]], "report_amended", c, version=2, previous_version=1,
                         reason="ER 阳性 / ER positive")
    world.commit()
    expect = TEXTS[locale]
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 800})
    try:
        page = login(context, live_server, "admin")
        # a refused form: the domain's parameter (the code) inside the translated sentence
        page.goto(f"{live_server}/admin/institutions")
        assert expect["column"] in page.text_content("[data-testid=institutions]")
        page.fill("input[name=code]", "COMM1")
        page.fill("input[name=name]", "Duplicate")
        with page.expect_navigation():
            page.click("form.grid-form button[type=submit]")
        assert expect["flash"] in page.text_content("main")
        page.screenshot(path=str(artifacts / f"catalogue-form-error-{locale}.png"), full_page=True)
        # the notification bell
        page.click("[data-testid=notif-bell]")
        wait_until(page, "document.querySelector('#notif-panel .notif-item')")
        assert expect["note"] in page.text_content("#notif-panel")
        item = page.locator("#notif-panel .notif-item").first
        assert item.evaluate("e => getComputedStyle(e).color") != "rgb(255, 255, 255)"  # not white on white
        page.screenshot(path=str(artifacts / f"catalogue-notification-{locale}.png"))
        # a JSON error: stable code, localised message
        page.goto(f"{live_server}/api/v1/consultations/987654")
        body = page.text_content("body")
        assert json.loads(body) == {"error": {"code": "not_found", "message": expect["json"]}}
        assert expect["json"] in body  # readable as sent, not \\u-escaped
        page.screenshot(path=str(artifacts / f"catalogue-json-error-{locale}.png"))
    finally:
        context.close()
