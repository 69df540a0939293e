"""Side by side with the report panel open each viewer pane is ~350 px wide at 1280×800: the
navigators must not cover much of it (viewer/pane.js _fitNavigator)."""

from __future__ import annotations

import pytest

from tests.browser_helpers import login, wait_until
from tests.viewer.test_viewer_browser import two_slides  # noqa: F401 - shared fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NAV = """() => [...document.querySelectorAll('.ph-pane')].filter((p) => p.offsetWidth > 0).map((p) => {
  const nav = p.querySelector('.navigator');
  const shown = nav && getComputedStyle(nav).display !== 'none';
  return {pane: p.getBoundingClientRect().width, nav: shown ? nav.getBoundingClientRect().width : 0};
})"""


def test_navigators_shrink_in_narrow_panes(browser, live_server, two_slides, demo_case_id, artifacts):  # noqa: F811
    first, second = two_slides
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = login(ctx, live_server, "tech")
    page.goto(f"{live_server}/cases/{demo_case_id}/viewer?slide={first}")
    wait_until(page, "window.pathologyViewer && pathologyViewer.drawState().primary.fullyLoaded")
    single = page.evaluate(NAV)
    assert single[0]["nav"] == 150  # a wide pane keeps the full overview map

    page.evaluate(f"pathologyViewer.setState({{compareSlideId: {second}}})")
    wait_until(page, "pathologyViewer.compareViewer && pathologyViewer.drawState().compare.fullyLoaded")
    # The report panel's width (400 px, .report-open) as when the pathologist writes beside the slides.
    page.evaluate("document.body.classList.add('report-open'); window.dispatchEvent(new Event('resize'))")
    wait_until(page, "[...document.querySelectorAll('.ph-pane')].every((p) => p.offsetWidth < 480)")
    wait_until(page, "[...document.querySelectorAll('.ph-pane .navigator')].every((n) => n.offsetWidth <= 80)")
    panes = page.evaluate(NAV)
    assert len(panes) == 2
    for p in panes:
        assert 0 < p["nav"] <= 0.3 * p["pane"], panes  # still there, but small
    page.screenshot(path=str(artifacts / "viewer-narrow-panes-zh.png"))
    ctx.close()
