"""The case page offers the DICOM WSI download beside the slide's other actions, in zh-CN and English."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser_helpers import login

SHOTS = Path("test-artifacts/shots/dicomweb20")


@pytest.mark.browser
@pytest.mark.parametrize("locale,text", [("zh-CN", "下载 DICOM"), ("en", "DICOM (zip)")])
def test_case_page_has_dicom_download(browser, live_server, ready_slide, demo_case_id, locale, text):
    slide_id = ready_slide(demo_case_id)
    context = browser.new_context(locale=locale, extra_http_headers={"Accept-Language": locale},
                                  accept_downloads=True)
    try:
        page = login(context, live_server, "tech")
        page.goto(f"{live_server}/cases/{demo_case_id}")
        link = page.locator(f"[data-testid=download-dicom-{slide_id}]")
        link.wait_for()
        assert link.inner_text().strip() == text
        if SHOTS.parent.exists():
            SHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SHOTS / f"case-dicom-download-{locale}.png"), full_page=True)
        with page.expect_download() as download:
            link.click()
        assert download.value.suggested_filename.endswith("-dicom.zip")
    finally:
        context.close()
