"""The original file is the diagnostic record (#21): while a slide of the case is still only the
uploader's coarse preview, signing is refused with a plain message naming the slide."""

from __future__ import annotations

from pathology_hub.models import Slide, SlideStatus
from tests.reports.conftest import DRAFT, save, sign, start_report


def test_signing_waits_for_full_resolution(client_for, scenario, db):
    preview = Slide(uid="f" * 32, case_id=scenario.case_id, label="S9", status=SlideStatus.INSPECTING,
                    preview_level=9, original_filename="arriving.svs", description='{"width": 8000, "height": 6000}')
    db.add(preview)
    db.commit()
    p = client_for("pathologist")
    report = save(p, start_report(p, scenario.consultation_id), DRAFT)
    refused = p.post(f"/api/v1/reports/{report['id']}/sign",
                     json={"password": "demo-pass-2026", "revision": report["current"]["revision"]})
    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "slides_preview_only" and "S9" in refused.json["error"]["message"]
    zh = p.post(f"/api/v1/reports/{report['id']}/sign", headers={"Accept-Language": "zh-CN"},
                json={"password": "demo-pass-2026", "revision": report["current"]["revision"]})
    assert "预览" in zh.json["error"]["message"]
    # full resolution in place (what run_tiling does): signing goes through
    preview.preview_level, preview.status = None, SlideStatus.READY
    db.commit()
    assert sign(p, report)["current"]["status"] == "signed"
