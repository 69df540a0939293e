"""The report language is a setting of the referring institution, changed on the admin page."""

from __future__ import annotations

from sqlalchemy import select

from pathology_hub.domain.report_documents import report_language
from pathology_hub.models import AuditEvent, Institution
from pathology_hub.models.consultations import ConsultationState as S


def test_admin_sets_the_report_language_of_an_institution(client_for, world, insts, make_consultation):
    admin = client_for("admin")
    comm1 = insts["COMM1"]
    assert comm1.report_language == "zh"  # the default (server default of migration 0013 too)
    c = make_consultation(S.IN_REVIEW, assignee="pathologist")
    assert c.case.institution_id == comm1.id and report_language(c) == "zh"

    resp = admin.post(f"/admin/institutions/{comm1.id}/report-language", data={"report_language": "en"})
    assert resp.status_code == 302
    world.expire_all()
    assert world.get(Institution, comm1.id).report_language == "en"
    assert report_language(c) == "en"
    assert world.scalar(select(AuditEvent).where(AuditEvent.action == "institution.report_language"))

    page = admin.post(f"/admin/institutions/{comm1.id}/report-language", data={"report_language": "fr"},
                      headers={"Accept-Language": "zh-CN"}, follow_redirects=True).get_data(as_text=True)
    assert "报告语言必须是以下之一：zh, en。" in page
    world.expire_all()
    assert world.get(Institution, comm1.id).report_language == "en"
