"""Every state × every transition that is not allowed from it answers 409 with the allowed list."""

from __future__ import annotations

import pytest

from pathology_hub.domain import consultations as svc
from pathology_hub.models.consultations import Consultation, ConsultationState as S

EXPECTED_ALLOWED = {
    S.DRAFT: ["submit", "cancel"],
    S.TRIAGE: ["assign", "cancel"],
    S.ASSIGNED: ["accept", "decline", "cancel"],
    S.IN_REVIEW: ["request_info", "escalate", "cancel"],  # reporting happens by signing the report
    S.INFO_REQUESTED: ["answer_info", "cancel"],
    S.ESCALATED: ["cancel"],
    S.REPORTED: ["return_result"],
    S.RETURNED: ["acknowledge"],
    S.ACKNOWLEDGED: [],
    S.CANCELLED: [],
}


def test_the_machine_is_the_documented_one():
    assert {s: svc.allowed_from(s) for s in S} == EXPECTED_ALLOWED
    assert svc.TRANSITIONS["child_reported"].internal and "child_reported" not in svc.PUBLIC_TRANSITIONS
    # only signing a report (domain/reports/signing.py) marks a consultation reported
    assert svc.TRANSITIONS["mark_reported"].internal and "mark_reported" not in svc.PUBLIC_TRANSITIONS


@pytest.mark.parametrize("state", list(S), ids=lambda s: s.value)
def test_illegal_transitions_answer_409(state, client_for, make_consultation, db):
    c = make_consultation(state, assignee="pathologist" if state not in (S.DRAFT, S.TRIAGE) else None)
    tech = client_for("tech")  # the originating centre always sees the request
    illegal = [t for t in svc.PUBLIC_TRANSITIONS if t not in EXPECTED_ALLOWED[state]]
    assert illegal
    for name in illegal:
        resp = tech.post(f"/api/v1/consultations/{c.id}/{name.replace('_', '-')}", json={"reason": "r"})
        assert resp.status_code == 409, (state, name, resp.get_data(as_text=True))
        err = resp.json["error"]
        assert err["code"] == "invalid_transition"
        assert err["details"] == {"state": state.value, "transition": name, "allowed": EXPECTED_ALLOWED[state]}
    db.expire_all()
    assert db.get(Consultation, c.id).state is state  # nothing moved


def test_the_page_form_reports_an_invalid_transition(client_for, make_consultation):
    c = make_consultation(S.REPORTED, assignee="pathologist")
    tech = client_for("tech")
    resp = tech.post(f"/consultations/{c.id}/act", data={"transition": "accept"})
    assert resp.status_code == 302
    page = tech.get(resp.headers["Location"]).get_data(as_text=True)
    assert "“Accept” is not possible while the consultation is reported." in page
    # the same refusal in Chinese, with the action and state named as on the page
    tech.post(f"/consultations/{c.id}/act", data={"transition": "accept"}, headers={"Accept-Language": "zh-CN"})
    page = tech.get(resp.headers["Location"], headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "会诊当前为“已出具意见”状态，无法执行“接受”。" in page
