"""DICOM annotation export and import from the viewer's annotation panel (annotations/exchange.js), in
Chromium: the download is a Supplement 222 file, and a file of another slide is imported after the
user confirms."""

from __future__ import annotations

import io
import types

import pydicom
import pytest

from tests.annotations.test_annotations_browser import settle, state, tiled_slide  # noqa: F401 - shared fixture
from tests.annotations.test_dicom_annotations import ANN_CLASS, _foreign_file
from tests.browser_helpers import login, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.usefixtures("consultation_grant")]


def test_dicom_export_and_import_through_the_panel(browser, live_server, tiled_slide, demo_case_id,  # noqa: F811
                                                   client_for, tmp_path, artifacts):
    c = client_for("pathologist")
    line = {"type": "LineString", "coordinates": [[100, 100], [900, 100]]}
    assert c.post(f"/api/v1/slides/{tiled_slide}/annotations", json={"geometry": line}).status_code == 201
    for locale, export_label in (("zh-CN", "导出 DICOM"), ("en", "Export DICOM")):
        ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale=locale, accept_downloads=True)
        page = login(ctx, live_server, "pathologist")
        page.goto(f"{live_server}/cases/{demo_case_id}/viewer?slide={tiled_slide}")
        wait_until(page, "window.pathologyViewer && pathologyViewer.annotations.state().primary.ready")
        export = page.locator("[data-testid=annotations-export-dicom]")
        assert export.is_visible() and export.inner_text() == export_label
        if locale == "en":
            page.screenshot(path=str(artifacts / "dicom-panel-en.png"))
            ctx.close()
            break
        settle(page, 1)
        with page.expect_download() as info:
            export.click()
        ds = pydicom.dcmread(io.BytesIO(open(info.value.path(), "rb").read()))
        assert ds.SOPClassUID == ANN_CLASS and len(ds.AnnotationGroupSequence) == 1

        # A file drawn on another slide: the user is asked first; once accepted, both shapes are imported.
        upload = tmp_path / "other.dcm"
        upload.write_bytes(_foreign_file(types.SimpleNamespace(uid="another-slide")))
        asked: list[str] = []

        def accept(dialog):
            asked.append(dialog.message)
            dialog.accept()
        page.on("dialog", accept)
        page.locator("[data-testid=annotations-import-dicom-file]").set_input_files(str(upload))
        settle(page, 3)
        assert asked and "另一张切片" in asked[0] and "仍要导入到本切片吗" in asked[0], asked
        toast = page.locator(".ph-toast").inner_text()
        assert "新增 2 个" in toast, toast
        page.screenshot(path=str(artifacts / "dicom-panel-zh.png"))

        # Not a DICOM file: the message and the stable code, nothing imported.
        bad = tmp_path / "bad.dcm"
        bad.write_bytes(b"hello")
        page.locator("[data-testid=annotations-import-dicom-file]").set_input_files(str(bad))
        wait_until(page, "document.querySelector('.ph-toast [data-testid=error-code]')")
        assert "dicom_invalid" in page.locator(".ph-toast [data-testid=error-code]").inner_text()
        assert "不是 DICOM 文件" in page.locator(".ph-toast").inner_text()
        assert state(page)["primary"]["count"] == 3
        page.screenshot(path=str(artifacts / "dicom-import-error-zh.png"))
        ctx.close()
