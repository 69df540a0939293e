"""Delivery of signed reports: the clinician's download (never acknowledges), FHIR export, public verification,
tampering detection, and the two-thread concurrent signing race."""

from __future__ import annotations

import base64
import hashlib
import threading

import requests
from sqlalchemy import select

from pathology_hub.models import AuditEvent
from pathology_hub.models.consultations import Consultation
from pathology_hub.models.reports import ReportFile, ReportSignature, ReportVersion

from .conftest import DRAFT, ok, save, sign, signed_report, start_report


def _actions(db, action):
    db.expire_all()
    return db.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


def test_clinician_sees_the_report_in_the_worklist_and_acknowledges_only_by_posting(client_for, scenario, db):
    report = signed_report(client_for, scenario)
    clin = client_for("clinician")
    items = ok(clin.get("/api/v1/worklist"))["worklists"]["clinician"]
    assert scenario.consultation_id in [i["id"] for i in items]
    home = clin.get("/").get_data(as_text=True)
    assert f"/reports/{report['id']}" in home  # the worklist links the signed report
    assert db.get(Consultation, scenario.consultation_id).state.value == "returned"
    # a technician of the centre may read it without acknowledging
    assert client_for("tech").get(f"/api/v1/reports/{report['id']}/pdf").status_code == 200
    db.expire_all()
    assert db.get(Consultation, scenario.consultation_id).state.value == "returned"
    resp = clin.get(f"/api/v1/reports/{report['id']}/pdf")
    assert resp.status_code == 200 and resp.mimetype == "application/pdf" and resp.data.startswith(b"%PDF")
    assert "attachment" in resp.headers["Content-Disposition"]
    db.expire_all()
    c = db.get(Consultation, scenario.consultation_id)
    assert c.state.value == "returned" and c.acknowledged_at is None  # reading never acknowledges
    downloads = _actions(db, "report.downloaded")
    assert {a.actor_name for a in downloads} == {"tech", "clinician"}
    assert len(_actions(db, "consultation.acknowledge")) == 0
    ok(clin.post(f"/api/v1/consultations/{scenario.consultation_id}/acknowledge", json={"version": 1}))
    db.expire_all()
    assert db.get(Consultation, scenario.consultation_id).state.value == "acknowledged"
    assert len(_actions(db, "consultation.acknowledge")) == 1
    page = clin.get(f"/reports/{report['id']}")
    assert page.status_code == 200 and DRAFT["diagnosis"] in page.get_data(as_text=True)
    assert any(a.actor_name == "clinician" for a in _actions(db, "report.viewed"))
    # other centres never see it
    assert client_for("tech2").get(f"/api/v1/reports/{report['id']}/pdf").status_code == 404


def test_fhir_export(client_for, scenario, db):
    report = signed_report(client_for, scenario)
    p = client_for("pathologist")
    assert client_for("tech2").get(f"/api/v1/reports/{report['id']}/fhir").status_code == 404
    resp = p.get(f"/api/v1/reports/{report['id']}/fhir")
    assert resp.status_code == 200 and resp.mimetype == "application/fhir+json"
    fhir = resp.json
    assert fhir["resourceType"] == "DiagnosticReport" and fhir["status"] == "final"
    assert fhir["code"]["coding"] and fhir["issued"].endswith("+08:00")
    assert fhir.get("subject") or fhir.get("identifier")
    form = fhir["presentedForm"][0]
    assert form["contentType"] == "application/pdf"
    pdf = base64.b64decode(form["data"])
    stored = db.scalars(select(ReportFile)).one()
    assert hashlib.sha256(pdf).hexdigest() == stored.sha256
    codings = [c for cc in fhir["conclusionCode"] for c in cc["coding"]]
    assert any(c["code"] == "8500/3" for c in codings)
    from pathology_hub.reporting.fhir import validate_diagnostic_report
    assert validate_diagnostic_report(fhir) == []
    assert len(_actions(db, "report.fhir_exported")) == 1
    # after an amendment the export says "amended"
    draft = ok(p.post(f"/api/v1/reports/{report['id']}/versions", json={"kind": "amendment", "reason": "typo"}), 201)
    sign(p, save(p, draft, {"diagnosis": "Invasive ductal carcinoma, grade 3"}))
    assert p.get(f"/api/v1/reports/{report['id']}/fhir").json["status"] == "amended"


def test_verification_page_for_both_versions_shows_no_clinical_content(client_for, scenario, db):
    report = signed_report(client_for, scenario)
    p, anon = client_for("pathologist"), client_for(None)
    code1 = report["current"]["verification_code"]
    draft = ok(p.post(f"/api/v1/reports/{report['id']}/versions", json={"kind": "amendment", "reason": "regrade"}),
               201)
    code2 = sign(p, save(p, draft, {"diagnosis": "Invasive ductal carcinoma, grade 3 / 浸润性导管癌，3级"}))[
        "current"]["verification_code"]
    one, two = ok(anon.get(f"/api/v1/verify/{code1}")), ok(anon.get(f"/api/v1/verify/{code2}"))
    assert one["valid"] and one["version"] == 1 and one["superseded"] and one["superseded_by"] == 2
    assert {f["kind"] for f in one["files"]} == {"original", "superseded"}
    assert two["valid"] and two["version"] == 2 and not two["superseded"] and two["kind"] == "amendment"
    assert two["signatures"][0]["full_name"] and two["signatures"][0]["signed_at"]
    assert anon.get("/api/v1/verify/NOTACODE1234567890").status_code == 404
    for code, version in ((code1, 1), (code2, 2)):
        page = anon.get(f"/verify/{code}")
        html = page.get_data(as_text=True)
        assert page.status_code == 200 and "FAILED" not in html
        assert "浸润性导管癌" not in html and "Invasive ductal carcinoma" not in html  # no clinical content
        assert DRAFT["microscopic_description"] not in html and "P-REP-1" not in html and "C-REP-1" not in html
        assert f'data-testid="verify-version">{version}' in html
    assert "verify-failed" in anon.get(f"/verify/{code1}").get_data(as_text=True)  # marked superseded
    assert anon.get("/verify?code=" + code2).status_code == 302
    assert anon.get("/verify").status_code == 200
    assert anon.get("/verify/unknown").status_code == 404


def test_tampered_pdf_fails_verification(client_for, scenario, db):
    from pathology_hub import runtime
    report = signed_report(client_for, scenario)
    code = report["current"]["verification_code"]
    anon = client_for(None)
    assert ok(anon.get(f"/api/v1/verify/{code}"))["valid"]
    f = db.scalars(select(ReportFile)).one()
    data = bytearray(runtime.store().get_bytes(f.storage_key))
    i = data.index(b"/Type /Page") if b"/Type /Page" in data else len(data) // 3
    data[i + 1] ^= 0x01  # one byte inside the signed range
    runtime.store().put_bytes(f.storage_key, bytes(data), content_type="application/pdf")
    result = ok(anon.get(f"/api/v1/verify/{code}"))
    assert result["valid"] is False and result["result"] == "failed"
    assert result["files"][0]["hash_ok"] is False
    html = anon.get(f"/verify/{code}").get_data(as_text=True)
    assert "FAILED" in html


def test_two_concurrent_sign_requests_exactly_one_wins(client_for, scenario, db, live_server):
    p = client_for("pathologist")
    report = save(p, start_report(p, scenario.consultation_id), DRAFT)
    revision = report["current"]["revision"]
    # two real HTTP clients with their own sessions, against the threaded live server
    sessions = []
    for _ in range(2):
        s = requests.Session()
        page = s.get(f"{live_server}/login")
        import re
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
        r = s.post(f"{live_server}/login", data={"username": "pathologist", "password": "demo-pass-2026",
                                                 "csrf_token": token}, allow_redirects=False)
        assert r.status_code == 302
        token = re.search(r'name="csrf-token" content="([^"]+)"', s.get(f"{live_server}/").text).group(1)
        sessions.append((s, token))
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def go(i):
        s, token = sessions[i]
        barrier.wait()
        results[i] = s.post(f"{live_server}/api/v1/reports/{report['id']}/sign",
                            json={"password": "demo-pass-2026", "revision": revision},
                            headers={"X-CSRFToken": token}, timeout=120)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=150)
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 409], [r.text[:300] for r in results]
    loser = next(r for r in results if r.status_code == 409).json()
    assert loser["error"]["code"] in ("report_signed", "report_version_conflict")
    db.expire_all()
    assert len(db.scalars(select(ReportSignature)).all()) == 1
    assert len(_actions(db, "report.signed")) == 1
    assert len(db.scalars(select(ReportFile)).all()) == 1
    assert db.scalars(select(ReportVersion)).one().status == "signed"
    assert db.get(Consultation, scenario.consultation_id).state.value == "returned"
