"""Finding 7a of issue 16: a signed PDF whose stored bytes changed is never served, the
refusal is audited, and every page offering the report warns about it."""

from __future__ import annotations

import json

from sqlalchemy import select

from pathology_hub.models import AuditEvent, User
from pathology_hub.models.consultations import Consultation, ConsultationState
from pathology_hub.models.reports import ReportFile

from .conftest import ok, signed_report


def flip_one_byte(key: str) -> None:
    """What an attacker with write access to the object folder (or bit rot) does: the bytes change
    in place, the object's metadata (with its recorded SHA-256) stays."""
    from pathology_hub import runtime
    path = runtime.store()._path(key)
    with open(path, "r+b") as fh:
        fh.seek(path.stat().st_size // 3)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0x01]))


def test_tampered_pdf_is_refused_audited_and_flagged(client_for, scenario, db):
    from pathology_hub.domain import report_integrity
    report_integrity.forget()
    report = signed_report(client_for, scenario)
    rid = report["id"]
    assert report["integrity_ok"] is True and report["current"]["integrity"] == {"ok": True, "failed_files": []}
    path = client_for("pathologist")
    assert path.get(f"/api/v1/reports/{rid}/pdf").status_code == 200
    assert path.get(f"/api/v1/reports/{rid}/fhir").status_code == 200
    page = path.get(f"/reports/{rid}").get_data(as_text=True)
    assert "report-integrity-warning" not in page and 'data-testid="report-pdf-1"' in page

    flip_one_byte(db.scalars(select(ReportFile)).one().storage_key)

    # The clinician (English) and the pathologist (Chinese) both get a refusal, never the altered bytes.
    clinician = client_for("clinician")
    db.execute(User.__table__.update().where(User.username == "pathologist").values(locale="zh_CN"))
    db.commit()
    for url in (f"/api/v1/reports/{rid}/pdf", f"/api/v1/reports/{rid}/versions/1/pdf",
                f"/api/v1/reports/{rid}/versions/1/pdf?original=1", f"/api/v1/reports/{rid}/fhir"):
        resp = clinician.get(url)
        assert resp.status_code == 409, (url, resp.status_code)
        assert resp.mimetype == "application/json" and b"%PDF" not in resp.data
        error = resp.get_json()["error"]
        assert error["code"] == "report_integrity_failed" and error["details"]["version"] == 1
        assert "no longer matches the signed document" in error["message"]
    zh = path.get(f"/api/v1/reports/{rid}/pdf").get_json()["error"]
    assert zh["code"] == "report_integrity_failed" and "签" in zh["message"], zh["message"]

    db.expire_all()
    events = db.scalars(select(AuditEvent).where(AuditEvent.action == "report.integrity_failed")).all()
    assert len(events) == 5
    assert {json.loads(e.details)["purpose"] for e in events} == {"pdf", "fhir"}
    assert all(json.loads(e.details)["expected_sha256"] != json.loads(e.details)["actual_sha256"] for e in events)
    assert not db.scalars(select(AuditEvent).where(AuditEvent.action == "report.downloaded",
                                                   AuditEvent.actor_id == clinician_id(db))).all()
    # A refused download does not count as the clinician having received the result.
    assert db.get(Consultation, scenario.consultation_id).state is ConsultationState.RETURNED

    # Pages: the report page, the consultation page and the result page all warn; no download button.
    page = clinician.get(f"/reports/{rid}").get_data(as_text=True)
    assert 'data-testid="report-integrity-warning"' in page and 'data-testid="report-integrity-1"' in page
    assert 'data-testid="report-pdf-1"' not in page
    assert 'report-integrity-warning' in clinician.get(f"/consultations/{scenario.consultation_id}").get_data(as_text=True)
    result = clinician.get(f"/consultations/{scenario.consultation_id}/result").get_data(as_text=True)
    assert 'report-integrity-warning' in result and 'result-report-pdf' not in result
    data = ok(clinician.get(f"/api/v1/reports/{rid}"))
    assert data["integrity_ok"] is False and data["current"]["integrity"] == {"ok": False, "failed_files": ["original"]}


def clinician_id(db) -> int:
    return db.scalar(select(User.id).where(User.username == "clinician"))


def test_pages_do_not_rehash_an_unchanged_pdf_on_every_view(client_for, scenario, monkeypatch):
    from pathology_hub import runtime
    from pathology_hub.domain import report_integrity
    report_integrity.forget()
    rid = signed_report(client_for, scenario)["id"]
    store = runtime.store()
    reads: list[str] = []
    real = store.get_bytes
    monkeypatch.setattr(store, "get_bytes", lambda key: reads.append(key) or real(key))
    clinician = client_for("clinician")
    for _ in range(5):
        assert clinician.get(f"/reports/{rid}").status_code == 200
        assert clinician.get(f"/consultations/{scenario.consultation_id}").status_code == 200
    assert [k for k in reads if k.endswith(".pdf")] == []  # remembered from the check at signing's first view
    # A download reads (and hashes) the bytes it serves, once.
    reads.clear()
    assert clinician.get(f"/api/v1/reports/{rid}/pdf").status_code == 200
    assert len([k for k in reads if k.endswith(".pdf")]) == 1
