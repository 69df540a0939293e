"""tus-js-client in Debian's Chromium against the real app: drag-and-drop upload of a slide,
interrupted at about half way by a page reload (the connection is cut), resumed after the
same file is chosen again, ending with the identical SHA-256 and a ready slide."""

from __future__ import annotations

import hashlib
import time

import pytest
from sqlalchemy import select

from pathology_hub.models import Slide, SlideStatus
from tests.browser_helpers import login, wait_until

pytestmark = pytest.mark.browser


def test_interrupted_browser_upload_resumes(browser, live_server, world, app, tmp_path, demo_case_id, artifacts):
    from pathology_hub.slides.synthetic import write_synthetic_slide
    app.config["SETTINGS"].upload_chunk_bytes = 256 * 1024
    slide_file = write_synthetic_slide(tmp_path / "resume-me.svs", 4000, 3000, mpp=0.5, seed=5, jpeg_quality=95)
    size = slide_file.stat().st_size
    assert size > 1024 * 1024

    ctx = browser.new_context()
    page = login(ctx, live_server, "tech")

    def slow_patch(route):  # a weak network: every chunk takes a while
        if route.request.method == "PATCH":
            time.sleep(0.15)
        route.continue_()
    page.route("**/api/v1/uploads/**", slow_patch)
    page.goto(f"{live_server}/cases/{demo_case_id}")
    wait_until(page, "window.pathologyUploader")
    page.set_input_files("#upload-app input[type=file]", [str(slide_file)])
    wait_until(page, f"pathologyUploader.uploads[0] && pathologyUploader.uploads[0].bytesSent >= {size // 2}", 60)
    sent_before = page.evaluate("pathologyUploader.uploads[0].bytesSent")
    assert sent_before < size
    page.screenshot(path=str(artifacts / "upload-half.png"))
    page.reload()  # cuts the connection mid-upload

    page.unroute("**/api/v1/uploads/**")
    wait_until(page, "window.pathologyUploader")
    page.set_input_files("#upload-app input[type=file]", [str(slide_file)])
    wait_until(page, "pathologyUploader.uploads[0] && pathologyUploader.uploads[0].state === 'done'", 90)
    upload = page.evaluate("pathologyUploader.uploads[0]")
    assert upload["resumed"], upload
    assert upload["sha256"] == hashlib.sha256(slide_file.read_bytes()).hexdigest()

    world.expire_all()
    slide = world.scalars(select(Slide)).one()
    assert slide.original.sha256 == upload["sha256"]
    assert slide.status is SlideStatus.READY, slide.reject_message
    page.reload()
    page.wait_for_selector(f"tr[data-slide-id='{slide.id}']")
    ctx.close()


def test_rejected_upload_shows_its_reason(browser, live_server, world, tmp_path, demo_case_id):
    bogus = tmp_path / "notes.svs"
    bogus.write_text("just text, renamed\n" * 100)
    ctx = browser.new_context()
    page = login(ctx, live_server, "tech")
    page.goto(f"{live_server}/cases/{demo_case_id}")
    wait_until(page, "window.pathologyUploader")
    page.set_input_files("#upload-app input[type=file]", [str(bogus)])
    wait_until(page, "pathologyUploader.uploads[0] && pathologyUploader.uploads[0].state === 'error'", 60)
    assert "not an image" in page.evaluate("pathologyUploader.uploads[0].statusText")
    wait_until(page, "document.querySelector('[data-role=reason]')", 20)
    assert "not an image" in page.locator("[data-role=reason]").first.text_content()
    ctx.close()
