"""GeoJSON export and import from the viewer's annotation panel (annotations/exchange.js), in Chromium."""

from __future__ import annotations

import json

import pytest

from tests.annotations.test_annotations_browser import settle, state, tiled_slide  # noqa: F401 - shared fixture
from tests.browser_helpers import login, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("consultation_grant")]


def test_export_and_import_through_the_panel(browser, live_server, tiled_slide, demo_case_id,  # noqa: F811
                                             client_for, tmp_path, artifacts):
    c = client_for("pathologist")
    line = {"type": "LineString", "coordinates": [[100, 100], [900, 100]]}
    assert c.post(f"/api/v1/slides/{tiled_slide}/annotations", json={"geometry": line}).status_code == 201
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN", accept_downloads=True)
    page = login(ctx, live_server, "pathologist")
    page.goto(f"{live_server}/cases/{demo_case_id}/viewer?slide={tiled_slide}")
    wait_until(page, "window.pathologyViewer && pathologyViewer.annotations.state().primary.ready")
    settle(page, 1)

    export = page.locator("[data-testid=annotations-export]")
    assert export.is_visible()
    with page.expect_download() as info:
        export.click()
    exported = json.loads(open(info.value.path(), encoding="utf-8").read())
    assert exported["type"] == "FeatureCollection" and len(exported["features"]) == 1

    # Import a file with a new rectangle plus the exported line (matched by id: unchanged, no copy).
    rect = {"type": "Feature", "properties": {"objectType": "annotation"},
            "geometry": {"type": "Polygon", "coordinates": [[[200, 200], [600, 200], [600, 500], [200, 500], [200, 200]]]}}
    upload = tmp_path / "in.geojson"
    upload.write_text(json.dumps({"type": "FeatureCollection", "features": exported["features"] + [rect]}))
    page.locator("[data-testid=annotations-import-file]").set_input_files(str(upload))
    settle(page, 2)
    toast = page.locator(".ph-toast").inner_text()
    assert "已导入" in toast and "新增 1 个" in toast and "未变 1 个" in toast, toast  # the page catalogue's zh text
    assert export.inner_text() == "导出 GeoJSON"
    page.screenshot(path=str(artifacts / "geojson-panel-zh.png"))

    # A broken file is refused with the message and the stable error code under it.
    bad = tmp_path / "bad.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Nope"}}]}')
    page.locator("[data-testid=annotations-import-file]").set_input_files(str(bad))
    wait_until(page, "document.querySelector('.ph-toast [data-testid=error-code]')")
    assert "invalid_features" in page.locator(".ph-toast [data-testid=error-code]").inner_text()
    assert state(page)["primary"]["count"] == 2
    page.screenshot(path=str(artifacts / "geojson-import-error-zh.png"))
    ctx.close()
