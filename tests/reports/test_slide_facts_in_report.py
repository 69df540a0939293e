"""The stain and block/part label set before submission appear in the viewer, the PDF and FHIR
(issue 15, item 9)."""

from __future__ import annotations

import json

from pathology_hub.reporting.document import SlideEntry
from pathology_hub.reporting.fhir import diagnostic_report, validate_diagnostic_report
from tests.reports.conftest import make_in_review, signed_report
from tests.reports.test_fhir_report import ISSUED, PDF
from tests.reports.test_pdf_render import pdftotext, sample_document

FACTS = {"stain_category": "ihc", "stain": "Ki-67", "block_label": "A1"}


def test_fhir_carries_each_slide_as_a_specimen_with_stain_and_block():
    doc = sample_document(slides=(SlideEntry("S1", "A1", "he", "", "u1"), SlideEntry("S2", "A1", "ihc", "Ki-67", "u2"),
                                  SlideEntry("S3", "", "", "Giemsa", "u3")))
    res = diagnostic_report(doc, report_id=17, status="final", pdf=PDF, pdf_url="", issued=ISSUED)
    assert validate_diagnostic_report(res) == []
    specimens = {s["id"]: s for s in res["contained"]}
    assert [r["reference"] for r in res["specimen"]] == ["#slide-1", "#slide-2", "#slide-3"]
    ki67 = specimens["slide-2"]
    assert ki67["processing"][0]["procedure"]["text"] == "Immunohistochemistry Ki-67"
    assert ki67["processing"][0]["procedure"]["coding"][0]["code"] == "ihc"
    assert ki67["parent"][0]["identifier"]["value"] == "A1"
    assert ki67["container"][0]["identifier"][0]["value"] == "S2"
    assert specimens["slide-1"]["processing"][0]["procedure"]["text"] == "Hematoxylin and eosin"
    assert specimens["slide-3"]["processing"][0]["procedure"] == {"text": "Giemsa"} and "parent" not in specimens["slide-3"]
    broken = json.loads(json.dumps(res))
    broken["specimen"][0]["reference"] = "#slide-9"
    assert any("does not resolve" in p for p in validate_diagnostic_report(broken))


def test_stain_and_block_reach_viewer_pdf_and_fhir(world, client_for, users, report_slide, ready_slide, tmp_path):
    scenario = make_in_review(world, client_for, users, ready_slide, report_slide, slide_facts=FACTS)
    p = client_for("pathologist")
    viewer = p.get(f"/cases/{scenario.case_id}/viewer", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "S1 · A1 · 免疫组化 Ki-67" in viewer
    report = signed_report(client_for, scenario)
    pdf = p.get(f"/api/v1/reports/{report['id']}/pdf")
    assert pdf.status_code == 200
    text = pdftotext(tmp_path, pdf.data)
    assert "送检切片" in text and "免疫组化 Ki-67" in text and "A1" in text
    fhir = p.get(f"/api/v1/reports/{report['id']}/fhir").json
    assert validate_diagnostic_report(fhir) == []
    (specimen,) = fhir["contained"]
    assert specimen["processing"][0]["procedure"]["text"] == "Immunohistochemistry Ki-67"
    assert specimen["parent"][0]["display"] == "Block A1"
