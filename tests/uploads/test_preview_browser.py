"""A preview-only slide in the browser (#21), in Chinese and English: the case page and the viewer
say plainly that it is a preview, the viewer says how far one can zoom, and does not zoom further."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from pathology_hub.models import User
from tests.browser_helpers import login, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = Path(os.environ.get("SHOTS_DIR", "test-artifacts/shots/preview21"))


@pytest.fixture
def preview_only(world, live_server, demo_case_id, tmp_path):
    """A tus upload created and its preview sent, but no byte of the original yet (returns the
    tus uploader, to send the original later)."""
    from tusclient import client as tus_client

    from pathology_hub.domain import accounts
    from pathology_hub.slides.synthetic import write_synthetic_slide
    from pathology_hub.upload_client.preview import build_preview
    slide = write_synthetic_slide(tmp_path / "arriving.svs", 14336, 3072, mpp=0.25, tissue_fraction=0.5, seed=4)
    token = accounts.create_api_token(world, world.scalar(select(User).where(User.username == "tech")), "scanner")
    world.commit()
    headers = {"Authorization": f"Bearer {token}"}
    up = tus_client.TusClient(f"{live_server}/api/v1/uploads/", headers=headers).uploader(
        str(slide), metadata={"filename": slide.name, "case_id": str(demo_case_id)})
    url = up.create_url()
    up.set_url(url)  # a later up.upload() sends the original to this upload, not a new one
    preview = build_preview(slide)
    resp = requests.post(f"{url}/preview", params=preview.query(), data=preview.pack, headers=headers, timeout=30)
    assert resp.status_code == 201, resp.text
    return up


@pytest.mark.parametrize("locale,badge,upto,receiving", [
    ("zh-CN", "预览：全分辨率图像上传中", "目前可用最高", "原始文件上传中"),
    ("en-US", "Preview — full resolution arriving", "available up to", "receiving the original")])
def test_preview_badge_and_zoom_cap(browser, live_server, preview_only, demo_case_id, locale, badge, upto, receiving):
    SHOTS.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1000, "height": 760}, locale=locale)
    page = login(ctx, live_server, "tech")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{live_server}/cases/{demo_case_id}")
    shown = page.locator("[data-role=preview]").first
    shown.wait_for()
    assert shown.inner_text() == badge
    # the status says what is happening (the original is on its way), not "inspecting"
    page.wait_for_timeout(300)  # the slide table is re-drawn by case.js from the slides API
    assert page.locator("[data-role=status]").first.inner_text() == receiving
    page.locator("#slides-card").screenshot(path=str(SHOTS / f"case-{locale}.png"))

    page.goto(f"{live_server}/cases/{demo_case_id}/viewer")
    wait_until(page, "window.pathologyViewer && pathologyViewer.drawState().primary.fullyLoaded")
    text = page.locator(".ph-pane-primary .ph-badge-preview").inner_text()
    assert page.evaluate("[...document.images].every(i => !i.src.includes('thumbnail') || i.naturalWidth > 0)")
    assert text.startswith(badge) and upto in text and "1/16" in text
    # Zooming far in stops at the preview's finest level (896 px wide, wider than the pane): one
    # screen pixel per preview pixel, i.e. 1/16 of full resolution.
    page.evaluate("pathologyViewer.viewer.viewport.zoomTo(1e4, null, true)")
    page.evaluate("pathologyViewer.viewer.viewport.applyConstraints(true)")
    ratio = page.evaluate("(() => { const v = pathologyViewer.viewer.viewport;"
                          " return v.viewportToImageZoom(v.getZoom(true)); })()")
    assert ratio == pytest.approx(1 / 16, rel=0.02)
    page.evaluate("pathologyViewer.viewer.viewport.goHome(true)")
    page.wait_for_timeout(400)
    page.screenshot(path=str(SHOTS / f"viewer-{locale}.png"))
    assert not errors
    ctx.close()


def test_an_open_viewer_switches_to_full_resolution_when_the_original_is_tiled(browser, live_server, preview_only,
                                                                                demo_case_id):
    ctx = browser.new_context(viewport={"width": 1000, "height": 760}, locale="en-US")
    ctx.add_init_script("window.PH_PREVIEW_POLL_MS = 300")
    page = login(ctx, live_server, "tech")
    page.goto(f"{live_server}/cases/{demo_case_id}/viewer")
    wait_until(page, "window.pathologyViewer && pathologyViewer.drawState().primary.fullyLoaded")
    assert page.locator(".ph-pane-primary .ph-badge-preview").is_visible()
    tile_url = "pathologyViewer.viewer.world.getItemAt(0).source.getTileUrl(10, 0, 0)"
    version = re.compile(r"/v(\d+)/slide_files/")
    before = int(version.search(page.evaluate(tile_url)).group(1))
    preview_only.upload()  # the original arrives; ingest and tiling run (inline in the test server)
    wait_until(page, "!document.querySelector('.ph-pane-primary .ph-badge-preview').checkVisibility()", timeout=90)
    wait_until(page, "pathologyViewer.drawState().primary.fullyLoaded", timeout=30)
    assert page.evaluate("pathologyViewer.viewer.viewport.maxZoomPixelRatio") == 2  # no preview zoom cap
    assert int(version.search(page.evaluate(tile_url)).group(1)) > before  # the full pyramid, in place
    ctx.close()
