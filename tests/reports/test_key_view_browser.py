"""Browser: a key view captured at 10× is captioned 10× and its link reopens at 10× in a wider
window (issue 15, item 5: figures labelled 10× used to open at 15×)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from pathology_hub.models.reports import ReportFigure
from tests.browser_helpers import login, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS = Path(os.environ.get("SHOTS_DIR", "test-artifacts/shots/views2"))


# English words are covered by the HTTP tests; SHOTS_LOCALES=zh-CN,en adds the English browser run
@pytest.mark.parametrize("locale", (os.environ.get("SHOTS_LOCALES") or "zh-CN").split(","))
def test_key_view_caption_is_the_magnification_its_link_opens_at(browser, live_server, scenario, db, locale):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale=locale)
    page = login(ctx, live_server, "pathologist")
    page.goto(f"{live_server}/consultations/{scenario.consultation_id}")
    page.click("[data-testid=open-report-editor]")
    wait_until(page, "window.pathologyViewer && pathologyViewer.drawState().primary.fullyLoaded", 40)
    page.click("[data-testid=report-start]")
    page.wait_for_selector("[data-testid=report-figure-caption]")
    page.click(".ph-preset[data-mag='10']")
    page.evaluate("pathologyViewer.setState({rotation: 90, adjustments: {brightness: 15, contrast: 0, gamma: 1.2}})")
    wait_until(page, "Math.abs(pathologyViewer.app.primary.magnification(true) - 10) < 0.01")
    page.fill("[data-testid=report-figure-caption]", "浸润性癌巢 / invasive nests")
    page.click("[data-testid=report-capture]")
    page.wait_for_selector("[data-testid=report-figure] img")
    wait_until(page, "document.querySelector('[data-testid=report-figure] img').naturalWidth > 100")
    caption = page.text_content("[data-testid=report-figure] figcaption")
    assert "10×" in caption
    db.expire_all()
    fig = db.scalars(select(ReportFigure)).one()
    assert fig.magnification == "10×" and "m=10" in fig.view_link and "r=90" in fig.view_link
    page.locator("[data-testid=report-figure]").scroll_into_view_if_needed()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"report-figure-{locale}.png"))
    href = page.get_attribute("[data-testid=report-figure] figcaption a", "href")
    ctx.close()

    wide = browser.new_context(viewport={"width": 1920, "height": 1080}, locale=locale)
    page = login(wide, live_server, "pathologist")
    page.goto(live_server + href)
    wait_until(page, "window.pathologyViewer && pathologyViewer.drawState().primary.fullyLoaded", 40)
    wait_until(page, "(() => { const v = pathologyViewer.viewer.viewport;"
                     " return Math.abs(v.getZoom(true) / v.getZoom(false) - 1) < 1e-6; })()")
    opened = page.evaluate("pathologyViewer.app.primary.magnification(true)")
    assert opened == pytest.approx(10, rel=0.01)
    state = page.evaluate("pathologyViewer.getState()")
    assert state["rotation"] == 90 and state["adjustments"] == {"brightness": 15, "contrast": 0, "gamma": 1.2}
    wide.close()
