"""Layout of the pages issue #18 found broken, in Chromium at 1024×768 (tablet) in zh-CN and English:
no horizontal overflow of the page or of a card, table headers and short actions on one line,
audit times on one line, the acknowledgement checkbox beside its label, and the cancel form set
apart from the submit button above it.  (A sweep over every page is tests' `sweep`; this one is
targeted at the layouts fixed here.)  Screenshots go to test-artifacts/layout-*.png."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from pathology_hub.domain import audit
from pathology_hub.models import Case, SlideStatus, User
from pathology_hub.models.cases import Slide
from pathology_hub.models.consultations import Consultation, ConsultationState
from tests.browser_helpers import login

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LONG_ZH = "胃窦黏膜慢性炎伴肠上皮化生及低级别上皮内瘤变，局灶腺体结构紊乱，请结合内镜所见综合判断"
LONG_EN = "Chronic-active-gastritis-with-intestinal-metaplasia-and-low-grade-dysplasia-" * 3
QC = [{"code": c, "message": m, "values": {}} for c, m in (
    ("missing_mpp", "No microns-per-pixel recorded"), ("low_tissue", "Very little tissue"),
    ("blurry", "The scan looks out of focus"))]


@pytest.fixture
def layout_data(world):
    case = world.scalar(select(Case).where(Case.case_number == "DEMO-2026-001"))
    tech = world.scalar(select(User).where(User.username == "tech"))
    case.specimen_site = LONG_ZH
    for n, (status, quality, code, message) in enumerate((
            (SlideStatus.READY, {"warnings": QC}, None, None),
            (SlideStatus.REJECTED, {}, "unsupported_format",
             "The file is not a whole-slide image this platform can read: " + LONG_EN),
            (SlideStatus.READY, {"warnings": QC[:1]}, None, None))):
        world.add(Slide(uid=f"layout{n:026d}", case_id=case.id, label=f"A{n + 1}", stain="HER2 (4B5) 免疫组化",
                        block_label="A1-" + "2" * 8, original_filename=f"{LONG_EN[:40]}-{n}.svs", status=status,
                        reject_code=code, reject_message=message, quality=json.dumps(quality), created_by_id=tech.id))
    c = Consultation(case_id=case.id, state=ConsultationState.DRAFT, requesting_institution_id=case.institution_id,
                     question=LONG_ZH, created_by_id=tech.id)
    world.add(c)
    for k in range(3):
        audit.record(world, "report.signed", actor=tech, object_type="report", object_id=k, case_id=case.id,
                     details={"note": LONG_EN, "zh": LONG_ZH, "k": k})
    world.commit()
    return {"case": case.id, "consultation": c.id}


OVERFLOW = """() => {
  const out = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth + 1) out.push(`page ${doc.scrollWidth} > ${window.innerWidth}`);
  for (const el of document.querySelectorAll('.card, .table-scroll')) {
    if (el.scrollWidth > el.clientWidth + 1) out.push(`card ${el.getAttribute('data-testid') || el.id || el.className}: ${el.scrollWidth} > ${el.clientWidth}`);
  }
  return out;
}"""

ONE_LINE = """(selector) => [...document.querySelectorAll(selector)].filter((el) => {
  // lines the text occupies (a table cell is as tall as its row, so measure the text itself)
  const range = document.createRange();
  range.selectNodeContents(el);
  const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.bottom)));
  return tops.size > 1 + el.querySelectorAll('br').length;  // deliberate line breaks are fine
}).map((el) => el.textContent.trim().slice(0, 40))"""


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_pages_fit_a_tablet_in_both_languages(browser, live_server, layout_data, locale, artifacts):
    problems: list[str] = []
    for width, height in ((1024, 768), (1280, 800)):
        ctx = browser.new_context(viewport={"width": width, "height": height}, locale=locale)
        tech = login(ctx, live_server, "tech")
        pages = {
            "case": (tech, f"/cases/{layout_data['case']}"),
            "consultation": (tech, f"/consultations/{layout_data['consultation']}"),
        }
        for name, (page, path) in pages.items():
            page.goto(live_server + path)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(artifacts / f"layout-{name}-{locale}-{width}.png"), full_page=True)
            problems += [f"{name} {locale} {width}: {p}" for p in page.evaluate(OVERFLOW)]
            if name == "case":
                problems += [f"case {locale} {width}: wrapped {t!r}" for t in
                             page.evaluate(ONE_LINE, "[data-testid=slides] th, [data-testid=slides] .slide-actions a")]
            else:
                box = page.locator("[data-testid=action-submit] label.check input").bounding_box()
                text = page.locator("[data-testid=action-submit] label.check span").bounding_box()
                assert box["x"] + box["width"] <= text["x"] and abs(box["y"] - text["y"]) < 12, (box, text)
                button = page.locator("[data-testid=action-submit] button[type=submit]").bounding_box()
                reason = page.locator("[data-testid=action-cancel] textarea").bounding_box()
                assert reason["y"] - (button["y"] + button["height"]) >= 24, (button, reason)
        ctx.close()
        ctx = browser.new_context(viewport={"width": width, "height": height}, locale=locale)
        admin = login(ctx, live_server, "admin")
        admin.goto(live_server + "/admin/audit")
        admin.screenshot(path=str(artifacts / f"layout-audit-{locale}-{width}.png"), full_page=True)
        problems += [f"audit {locale} {width}: {p}" for p in admin.evaluate(OVERFLOW)]
        problems += [f"audit {locale} {width}: wrapped {t!r}" for t in
                     admin.evaluate(ONE_LINE, "[data-testid=audit-entries] th, [data-testid=audit-entries] .audit-time")]
        ctx.close()
    assert not problems, "\n".join(problems)
