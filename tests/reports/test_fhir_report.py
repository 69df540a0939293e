"""FHIR R4 DiagnosticReport export: required elements, statuses, the PDF as presentedForm."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json

import pytest

from pathology_hub.reporting.fhir import diagnostic_report, validate_diagnostic_report
from tests.reports.test_pdf_render import sample_document

pytestmark = pytest.mark.no_database

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
ISSUED = dt.datetime(2026, 11, 20, 14, 5, 7, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def _report(status: str = "final", **doc_overrides) -> dict:
    return diagnostic_report(sample_document(**doc_overrides), report_id=17, status=status, pdf=PDF,
                             pdf_url="https://hub.example.org/api/v1/reports/17/pdf", issued=ISSUED)


def test_required_and_emitted_elements():
    res = _report()
    assert validate_diagnostic_report(res) == []
    json.dumps(res)  # JSON-ready
    assert res["resourceType"] == "DiagnosticReport"
    assert res["id"] == "17"
    assert res["status"] == "final"
    assert {"system": "http://loinc.org", "code": "60567-5",
            "display": "Comprehensive pathology report panel"} in res["code"]["coding"]
    cat = res["category"][0]["coding"][0]
    assert cat["system"] == "http://terminology.hl7.org/CodeSystem/v2-0074" and cat["code"] == "PAT"
    assert any(i["value"] == "RC-2026-00042-v2" for i in res["identifier"])
    assert any(i["value"] == "RC-2026-00042" for i in res["identifier"])
    assert res["subject"]["identifier"]["value"] == "P-7F3A9C"
    assert res["issued"] == "2026-11-20T14:05:07+08:00"
    performers = [p["display"] for p in res["performer"]]
    assert "张伟 Zhang Wei (华东大学附属医院 University Hospital)" in performers
    assert "Dr. Anna Müller (University Hospital)" in performers
    assert "华东大学附属医院病理科 University Hospital Pathology" in performers
    assert res["conclusion"].startswith("诊断：浸润性导管癌")


def test_patient_name_never_exported():
    res = _report()
    assert "王小明" not in json.dumps(res, ensure_ascii=False)


@pytest.mark.parametrize("status", ["final", "amended", "appended"])
def test_allowed_statuses(status):
    res = _report(status)
    assert res["status"] == status
    assert validate_diagnostic_report(res) == []


@pytest.mark.parametrize("status", ["preliminary", "corrected", "FINAL", "", None])
def test_other_statuses_rejected(status):
    with pytest.raises(ValueError):
        _report(status)


def test_naive_issued_rejected():
    with pytest.raises(ValueError, match="timezone"):
        diagnostic_report(sample_document(), report_id=1, status="final", pdf=PDF, pdf_url="https://x/1",
                          issued=dt.datetime(2026, 1, 1))


def test_presented_form_round_trips_the_pdf():
    form = _report()["presentedForm"]
    assert len(form) == 1
    att = form[0]
    assert att["contentType"] == "application/pdf"
    assert base64.b64decode(att["data"], validate=True) == PDF
    assert att["size"] == len(PDF)
    assert att["hash"] == base64.b64encode(hashlib.sha1(PDF).digest()).decode()
    assert att["url"] == "https://hub.example.org/api/v1/reports/17/pdf"
    assert att["language"] == "zh-CN"
    assert "RC-2026-00042" in att["title"] and "2" in att["title"]
    assert _report(language="en")["presentedForm"][0]["language"] == "en"


@pytest.mark.parametrize("system,uri", [
    ("ICD-O-3", "http://terminology.hl7.org/CodeSystem/icd-o-3"),
    ("SNOMED CT", "http://snomed.info/sct"),
    ("http://example.org/local-codes", "http://example.org/local-codes"),
])
def test_conclusion_code_when_coded(system, uri):
    res = _report(diagnosis_code_system=system)
    (concept,) = res["conclusionCode"]
    assert concept["coding"] == [{"system": uri, "code": "8500/3", "display": "Infiltrating duct carcinoma, NOS"}]
    assert validate_diagnostic_report(res) == []


def test_no_conclusion_code_when_uncoded():
    res = _report(diagnosis_code="", diagnosis_code_system="", diagnosis_code_display="")
    assert "conclusionCode" not in res
    assert res["conclusion"]
    assert validate_diagnostic_report(res) == []
    res = _report(diagnosis="", diagnosis_code="")
    assert "conclusion" not in res and "conclusionCode" not in res
    assert validate_diagnostic_report(res) == []


def test_unknown_code_system_rejected():
    with pytest.raises(ValueError, match="code system"):
        _report(diagnosis_code_system="my list")


def test_validator_catches_problems():
    good = _report()
    broken = copy.deepcopy(good)
    del broken["status"]
    assert any("status" in p for p in validate_diagnostic_report(broken))
    cases = {
        "code": lambda r: r.pop("code"),
        "status value": lambda r: r.__setitem__("status", "done"),
        "resourceType": lambda r: r.__setitem__("resourceType", "Observation"),
        "issued": lambda r: r.__setitem__("issued", "2026-11-20 14:05"),
        "category array": lambda r: r.__setitem__("category", r["category"][0]),
        "empty conclusion": lambda r: r.__setitem__("conclusion", ""),
        "unknown element": lambda r: r.__setitem__("diagnosis", "x"),
        "hash": lambda r: r["presentedForm"][0].__setitem__("hash", base64.b64encode(b"x" * 20).decode()),
        "size": lambda r: r["presentedForm"][0].__setitem__("size", 3),
        "data": lambda r: r["presentedForm"][0].__setitem__("data", "not base64!"),
        "contentType": lambda r: r["presentedForm"][0].pop("contentType"),
        "subject": lambda r: r.__setitem__("subject", {}),
        "coding code": lambda r: r["conclusionCode"][0]["coding"][0].__setitem__("code", " 8500/3"),
        "id": lambda r: r.__setitem__("id", 17),
    }
    for name, breaker in cases.items():
        res = copy.deepcopy(good)
        breaker(res)
        assert validate_diagnostic_report(res), f"{name}: not caught"
    assert validate_diagnostic_report("nope") == ["the resource must be a JSON object"]  # type: ignore[arg-type]


def test_subject_is_the_pseudonym_only():
    res = _report()
    assert res["subject"] == {"type": "Patient", "identifier": {"system": "urn:pathology-hub:patient",
                                                                 "value": "P-7F3A9C"}, "display": "Patient P-7F3A9C"}
    res = _report(patient_id="")
    assert "subject" not in res
    assert validate_diagnostic_report(res) == []
