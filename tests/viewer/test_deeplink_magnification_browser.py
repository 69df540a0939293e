"""Deep links reproduce the magnification at any window size (issue 15, item 5).

A link made at 10× in a 1280-pixel-wide window must reopen at 10× (±1 %) in a
1920-pixel-wide one and vice versa, with its rotation and image adjustments. The old
links stored OpenSeadragon's viewport zoom (1 = image width fills the window), which
reopened a 10× link at 15× in a wider window."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from pathology_hub.models import Slide
from tests.browser_helpers import login, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ADJUST = {"brightness": 20, "contrast": -10, "gamma": 1.4}
SHOTS = Path(os.environ.get("SHOTS_DIR", "test-artifacts/shots/views2"))


@pytest.fixture
def slide_id(client_for, world, synthetic_slide, demo_case_id, ready_slide):
    ready_slide(demo_case_id, synthetic_slide)
    world.expire_all()
    return world.scalars(select(Slide.id).order_by(Slide.id)).first()


def open_viewer(browser, base, url, width, locale="en-US"):
    ctx = browser.new_context(viewport={"width": width, "height": 900}, locale=locale)
    page = login(ctx, base, "tech")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    wait_until(page, "window.pathologyViewer && pathologyViewer.drawState().primary.fullyLoaded")
    return ctx, page, errors


def effective(page) -> dict:
    """What the viewer shows once the animation is over: magnification, rotation, adjustments, read-out."""
    wait_until(page, "(() => { const v = pathologyViewer.viewer.viewport;"
                     " return Math.abs(v.getZoom(true) / v.getZoom(false) - 1) < 1e-6; })()")
    return page.evaluate("""() => ({
        magnification: pathologyViewer.app.primary.magnification(true),
        rotation: pathologyViewer.viewer.viewport.getRotation(true),
        adjustments: pathologyViewer.getState().adjustments,
        readout: document.querySelector('.ph-mag').textContent,
        paneWidth: pathologyViewer.viewer.container.clientWidth,
        x: pathologyViewer.getState().x, y: pathologyViewer.getState().y })""")


@pytest.mark.parametrize(("made_at", "opened_at"), ((1280, 1920), (1920, 1280)))
def test_link_made_at_10x_reopens_at_10x_in_another_window_size(browser, live_server, slide_id, demo_case_id,
                                                                 made_at, opened_at):
    viewer = f"{live_server}/cases/{demo_case_id}/viewer"
    ctx, page, errors = open_viewer(browser, live_server, viewer, made_at)
    page.click(".ph-preset[data-mag='10']")                   # the user's way to 10×
    page.evaluate("pathologyViewer.setState({x: 0.4, y: 0.55, rotation: 90, adjustments: %s})"
                  % str(ADJUST).replace("'", '"'))
    made = effective(page)
    assert made["magnification"] == pytest.approx(10, rel=0.01) and made["readout"] == "10×"
    link = page.evaluate("pathologyViewer.getState().url")
    assert "m=10" in link and "z=" not in link and "r=90" in link and "g=1.4" in link
    if made_at == 1280:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "viewer-link-en.png"))
    ctx.close()

    ctx, page, errors2 = open_viewer(browser, live_server, link, opened_at)
    opened = effective(page)
    assert opened["paneWidth"] != made["paneWidth"]             # really another window size
    assert opened["magnification"] == pytest.approx(10, rel=0.01), opened
    assert opened["readout"] == "10×"
    assert opened["rotation"] == 90 and opened["adjustments"] == ADJUST
    assert opened["x"] == pytest.approx(0.4, abs=0.002) and opened["y"] == pytest.approx(0.55, abs=0.002)
    assert page.locator("[data-adjust=gamma]").input_value() == "1.4"
    assert not errors and not errors2, errors + errors2
    ctx.close()


def test_old_links_with_window_relative_zoom_still_open(browser, live_server, slide_id, demo_case_id):
    url = f"{live_server}/cases/{demo_case_id}/viewer?slide={slide_id}&x=0.5&y=0.5&z=4&r=180"
    ctx, page, errors = open_viewer(browser, live_server, url, 1280, locale="zh-CN")
    opened = effective(page)
    assert page.evaluate("pathologyViewer.viewer.viewport.getZoom(true)") == pytest.approx(4, rel=0.01)
    assert opened["rotation"] == 180 and not errors
    # Once the view is written back, the link carries the magnification instead.
    wait_until(page, "location.search.includes('m=') && !location.search.includes('z=')")
    # The viewer with its link control in Chinese, at a link's 10× with adjustments (for the developer's eyes).
    page.goto(f"{live_server}/cases/{demo_case_id}/viewer?slide={slide_id}&x=0.4&y=0.55&m=10&r=90&b=20&c=-10&g=1.4")
    wait_until(page, "window.pathologyViewer && pathologyViewer.drawState().primary.fullyLoaded")
    assert effective(page)["readout"] == "10×"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "viewer-link-zh.png"))
    ctx.close()
