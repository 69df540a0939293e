"""The clinician reads an amended result in Chromium (zh-CN): version 2 in force, signed by the expert,
the reason for the amendment up front, version 1 shown as superseded with its dates, and the
"I have read this result" button, which acknowledges version 2 only when clicked.

The consultation is prepared through the API (escalation, signing version 1, the clinician's
acknowledgement of version 1, the amendment); the browser part is only what the clinician sees.
Screenshots in zh-CN and English go to test-artifacts/.
"""

from __future__ import annotations

import pytest

from tests.browser_helpers import login
from tests.reports.conftest import DRAFT, make_in_review, ok, report_slide, save, sign, start_report  # noqa: F401

pytestmark = pytest.mark.browser

V1 = "Atypical ductal hyperplasia / 非典型导管增生"
V2 = "Invasive ductal carcinoma, grade 2 / 浸润性导管癌，2级"
REASON = "Deeper levels show stromal invasion / 深切片可见间质浸润"


def _amended_consultation(db, client_for, users, ready_slide, slide) -> tuple[int, int]:
    s = make_in_review(db, client_for, users, ready_slide, slide, number="C-TRUTH-UI")
    path_, expert, clin = client_for("pathologist"), client_for("expert"), client_for("clinician")
    child = ok(path_.post(f"/api/v1/consultations/{s.consultation_id}/escalate",
                          json={"preliminary_opinion": "ADH vs DCIS; IHC advised / 倾向非典型导管增生",
                                "expert_id": users["expert"].id}))["child_id"]
    ok(expert.post(f"/api/v1/consultations/{child}/accept"))
    rid = sign(expert, save(expert, start_report(expert, child), {**DRAFT, "diagnosis": V1, "diagnosis_code": ""}))["id"]
    ok(clin.post(f"/api/v1/consultations/{s.consultation_id}/acknowledge", json={"version": 1}))
    draft = ok(expert.post(f"/api/v1/reports/{rid}/versions", json={"kind": "amendment", "reason": REASON}), 201)
    sign(expert, save(expert, draft, {"diagnosis": V2, "diagnosis_code": "8500/3"}))
    return s.consultation_id, rid


def test_clinician_reads_the_amended_result_and_confirms_it_in_chinese(browser, live_server, world, users,
                                                                         client_for, report_slide, ready_slide, artifacts):  # noqa: F811
    cid, _rid = _amended_consultation(world, client_for, users, ready_slide, report_slide)
    clinician = users["clinician"]
    clinician.locale = "zh_CN"
    world.commit()
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    try:
        page = login(context, live_server, "clinician")
        page.goto(f"{live_server}/consultations/{cid}/result")
        assert V2 in page.text_content("[data-testid=result-diagnosis]")
        assert page.text_content("[data-testid=result-signer]") == users["expert"].full_name
        assert page.text_content("[data-testid=result-institution]") == users["expert"].institution.name
        banner = page.text_content("[data-testid=result-amended]")
        assert "更正报告" in banner and REASON in banner
        old = page.text_content("[data-testid=result-superseded-1]")
        assert V1 in old and "已被取代" in old
        button = page.locator("[data-testid=acknowledge-button]")
        assert button.is_visible() and "我已阅读此结果" in button.text_content() and "2" in button.text_content()
        assert "尚未确认已阅" in page.text_content("[data-testid=result-acknowledgement]")
        page.screenshot(path=str(artifacts / "result-amended-zh.png"), full_page=True)
        # reloading (a GET) does not acknowledge
        page.reload()
        assert page.locator("[data-testid=acknowledge-button]").is_visible()

        clinician.locale = "en"
        world.commit()
        page.reload()
        assert "I have read this result" in page.text_content("[data-testid=acknowledge-button]")
        assert "Amended result" in page.text_content("[data-testid=result-amended]")
        page.screenshot(path=str(artifacts / "result-amended-en.png"), full_page=True)
        clinician.locale = "zh_CN"
        world.commit()
        page.reload()

        with page.expect_navigation():
            page.click("[data-testid=acknowledge-button]")
        assert page.locator("[data-testid=acknowledge-button]").count() == 0
        assert "确认阅读第 2 版" in page.text_content("[data-testid=result-acknowledgement]")
        assert page.text_content("[data-testid=consultation-state]").strip() == "已确认"
        page.screenshot(path=str(artifacts / "result-acknowledged-zh.png"), full_page=True)
    finally:
        context.close()
