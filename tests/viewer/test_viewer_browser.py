"""The viewer in Debian's Chromium against the real app: tiles drawn, zoom, pan, rotate,
side by side with sync, deep link, and no tiles for another institution."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pathology_hub.models import Slide
from tests.browser_helpers import login, wait_until

pytestmark = pytest.mark.browser


@pytest.fixture
def two_slides(client_for, world, synthetic_slide, tmp_path, demo_case_id, ready_slide):
    from pathology_hub.slides.synthetic import write_synthetic_slide
    second = write_synthetic_slide(tmp_path / "second.svs", 2600, 2000, mpp=0.25, seed=21)
    ready_slide(demo_case_id, synthetic_slide)
    ready_slide(demo_case_id, second, stain="Ki-67")
    world.expire_all()
    return [s.id for s in world.scalars(select(Slide).order_by(Slide.id))]


def test_viewer_end_to_end(browser, live_server, two_slides, demo_case_id, artifacts):
    first, second = two_slides
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page = login(ctx, live_server, "tech")
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{live_server}/cases/{demo_case_id}/viewer")
    wait_until(page, "window.pathologyViewer && pathologyViewer.drawState().primary.fullyLoaded")
    assert page.evaluate("pathologyViewer.drawState().primary.canvas.drawn") > 0
    page.screenshot(path=str(artifacts / "viewer-open.png"))

    page.click(".ph-preset[data-mag='20']")
    wait_until(page, "Math.abs(pathologyViewer.getState().magnification - 20) < 0.5")
    wait_until(page, "pathologyViewer.drawState().primary.fullyLoaded")
    assert page.evaluate("pathologyViewer.drawState().primary.canvas.drawn") > 0

    before = page.evaluate("pathologyViewer.getState()")
    box = page.locator(".ph-pane-primary").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx - 200, cy - 120, steps=8)
    page.mouse.up()
    wait_until(page, f"Math.abs(pathologyViewer.getState().x - {before['x']}) > 1e-4")

    page.click(".ph-btn[aria-label='Rotate 90° right']")
    wait_until(page, "pathologyViewer.getState().rotation === 90")

    page.evaluate(f"pathologyViewer.setState({{compareSlideId: {second}, sync: true}})")
    wait_until(page, "pathologyViewer.compareViewer && pathologyViewer.drawState().compare.fullyLoaded")
    assert page.evaluate("pathologyViewer.drawState().compare.canvas.drawn") > 0
    page.evaluate("pathologyViewer.setState({x: 0.3, y: 0.6, rotation: 180})")
    wait_until(page, "pathologyViewer.compareViewer.viewport.getRotation() === 180")
    page.screenshot(path=str(artifacts / "viewer-side-by-side.png"))

    state = page.evaluate("pathologyViewer.getState()")
    link = page.evaluate("pathologyViewer.copyLink()")
    assert f"slide={first}" in link and "r=180" in link
    page2 = ctx.new_page()
    page2.goto(link)
    wait_until(page2, "window.pathologyViewer && pathologyViewer.drawState().primary.fullyLoaded")
    restored = page2.evaluate("pathologyViewer.getState()")
    assert restored["rotation"] == 180 and abs(restored["x"] - state["x"]) < 0.01 and abs(restored["y"] - state["y"]) < 0.01
    assert restored["compareSlideId"] == second
    assert not errors, errors

    # Another institution: no viewer page, no tiles, even with the tile URL in hand.
    dzi_url = page.evaluate("JSON.parse(document.getElementById('viewer-config').textContent).slides[0].dziUrl")
    tile_url = live_server + dzi_url.replace("slide.dzi", "slide_files/12/0_0.jpeg")
    assert page.goto(tile_url).status == 200
    other = browser.new_context()
    outsider = login(other, live_server, "tech2")
    assert outsider.goto(f"{live_server}/cases/{demo_case_id}/viewer").status == 404
    assert outsider.goto(tile_url).status == 404
    anonymous = browser.new_context()
    assert anonymous.new_page().goto(tile_url).status in (401, 404)
    anonymous.close()
    ctx.close()
    other.close()
