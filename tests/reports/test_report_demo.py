"""The demo's returned consultation carries a real signed report (PDF, PAdES signature, verification code)."""

from __future__ import annotations

from sqlalchemy import select

from pathology_hub.models import Case
from pathology_hub.models.consultations import Consultation
from pathology_hub.models.reports import Report


def test_demo_returned_consultation_has_a_signed_verifiable_report(world, client_for):
    from pathology_hub.demo import ensure_demo_consultations
    ensure_demo_consultations(world)
    world.commit()
    case = world.scalar(select(Case).where(Case.case_number == "DEMO-C-005"))
    c = world.scalar(select(Consultation).where(Consultation.case_id == case.id))
    report = world.scalar(select(Report).where(Report.consultation_id == c.id))
    v = report.versions[-1]
    assert c.state.value == "returned" and v.status == "signed" and v.diagnosis_code == "8097/3"
    from pathology_hub.domain import results
    assert results.result_in_force(world, c).in_force.recommendations.startswith("建议完整切除")
    result = client_for(None).get(f"/api/v1/verify/{v.verification_code}").json
    assert result["valid"] is True and result["version"] == 1
    pdf = client_for("clinician").get(f"/api/v1/reports/{report.id}/pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    world.expire_all()
    assert world.get(Consultation, c.id).state.value == "returned"  # downloading is not acknowledging
