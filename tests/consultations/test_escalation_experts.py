"""Whom a consultation may be escalated to (domain/consultations.escalation_experts, shown on its page)."""

from __future__ import annotations

from pathology_hub.domain import consultations as svc
from pathology_hub.models.consultations import ConsultationState


def test_experts_are_the_active_pathologists_above_the_receiving_institution(world, users, make_consultation):
    c = make_consultation(ConsultationState.IN_REVIEW, receiving="DIST1", assignee="pathologist")
    assert [u.username for u in svc.escalation_experts(world, c)] == ["expert"]  # UNIV, not DIST1's own
    users["expert"].active = False
    world.commit()
    assert svc.escalation_experts(world, c) == []
    top = make_consultation(ConsultationState.IN_REVIEW, receiving="UNIV", assignee="expert")
    assert svc.escalation_experts(world, top) == []  # nobody above the university


def test_the_detail_page_offers_them(client_for, make_consultation):
    c = make_consultation(ConsultationState.IN_REVIEW, receiving="DIST1", assignee="pathologist")
    page = client_for("pathologist").get(f"/consultations/{c.id}")
    assert page.status_code == 200
    assert "陈教授 Chen (university expert) · UNIV" in page.get_data(as_text=True)
