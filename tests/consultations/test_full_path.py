"""The whole referral path through the HTTP API, from a community centre to the university and back."""

from __future__ import annotations

from sqlalchemy import select

from pathology_hub.models import AuditEvent, Slide, SlideStatus
from pathology_hub.models.consultations import Consultation, ConsultationEvent
from tests.fixtures.uploads import tus_upload


def _post(client, path, body=None, status=200):
    resp = client.post(path, json=body or {})
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.json


def test_centre_to_district_to_university_and_back(client_for, db, users, synthetic_slide):
    tech, admin, path_c, expert, clin = (client_for(n) for n in ("tech", "admin", "pathologist", "expert", "clinician"))

    case = _post(tech, "/api/v1/cases", {"case_number": "C-FLOW-1", "patient_pseudo_id": "P-1", "priority": "urgent",
                                         "requesting_clinician_id": users["clinician"].id}, 201)
    cons = _post(tech, f"/api/v1/cases/{case['id']}/consultations",
                 {"question": "Gastric biopsy: carcinoma?", "subspecialty": "gastrointestinal"}, 201)
    cid = cons["id"]
    assert cons["state"] == "draft" and cons["actions"] == ["submit", "cancel"]

    # No slide yet: submission is refused with a stable code.
    assert tech.post(f"/api/v1/consultations/{cid}/submit", json={}).json["error"]["code"] == "slides_not_ready"
    assert tus_upload(tech, synthetic_slide, case["id"]).status_code == 201
    # Before submission the district hospital cannot see the case.
    assert path_c.get(f"/api/v1/cases/{case['id']}").status_code == 404
    submitted = _post(tech, f"/api/v1/consultations/{cid}/submit", {"acknowledge_warnings": True})
    assert submitted["state"] == "triage" and submitted["receiving_institution"] == "DIST1"

    # Triage at DIST1 (admin of the receiving institution) assigns the pathologist.
    assert path_c.get(f"/api/v1/cases/{case['id']}").status_code == 200
    assigned = _post(admin, f"/api/v1/consultations/{cid}/assign", {"assignee_id": users["pathologist"].id})
    assert assigned["state"] == "assigned" and assigned["assignee"]["username"] == "pathologist"
    assert admin.get(f"/api/v1/consultations/{cid}").status_code == 404  # triage access ends with assignment

    assert _post(path_c, f"/api/v1/consultations/{cid}/accept")["state"] == "in_review"
    assert _post(path_c, f"/api/v1/consultations/{cid}/request-info",
                 {"comment": "Please add a PAS stain."})["state"] == "info_requested"

    # The centre adds a slide and answers.
    assert tus_upload(tech, synthetic_slide, case["id"], stain="PAS", filename="pas.svs",
                      allow_duplicate=True).status_code == 201  # the same test file stands in for the PAS slide
    db.expire_all()
    slides = db.scalars(select(Slide).where(Slide.case_id == case["id"])).all()
    assert len(slides) == 2 and {s.status for s in slides} == {SlideStatus.READY}
    assert _post(tech, f"/api/v1/consultations/{cid}/answer-info", {"comment": "PAS added."})["state"] == "in_review"

    # Escalation to the university: a linked child request with its own triage.
    esc = _post(path_c, f"/api/v1/consultations/{cid}/escalate", {"preliminary_opinion": "Atypical glands; IHC?"})
    child_id = esc["child_id"]
    assert esc["state"] == "escalated"
    child = expert.get(f"/api/v1/consultations/{child_id}").json
    assert child["state"] == "triage" and child["receiving_institution"] == "UNIV"
    assert child["parent_id"] == cid and child["preliminary_opinion"] == "Atypical glands; IHC?"
    auto = _post(expert, f"/api/v1/consultations/{child_id}/assign")  # auto: least loaded, gastrointestinal
    assert auto["assignee"]["username"] == "expert"
    _post(expert, f"/api/v1/consultations/{child_id}/accept")
    # The expert writes the report and signs it with the password: the child is reported and the
    # result returns to the centre at once (the recommendations are the follow-up advice).
    report = _post(expert, f"/api/v1/consultations/{child_id}/report", {}, 201)
    report = expert.put(f"/api/v1/reports/{report['id']}", json={
        "revision": report["current"]["revision"], "specimen": "Gastric biopsy",
        "microscopic_description": "Atypical glands infiltrating the lamina propria.",
        "diagnosis": "Adenocarcinoma, intestinal type.", "diagnosis_code": "8144/3",
        "recommendations": "Refer to surgery."}).json
    assert expert.post(f"/api/v1/reports/{report['id']}/sign", json={
        "password": "wrong password", "revision": report["current"]["revision"]}).status_code == 401
    signed = _post(expert, f"/api/v1/reports/{report['id']}/sign",
                   {"password": "demo-pass-2026", "revision": report["current"]["revision"]})
    assert signed["current"]["status"] == "signed"
    parent = path_c.get(f"/api/v1/consultations/{cid}").json  # the district pathologist lost nothing
    assert parent["state"] == "returned" and "opinion" not in parent
    in_force = parent["result"]["in_force"]
    assert in_force["diagnosis"] == "Adenocarcinoma, intestinal type." and in_force["recommendations"] == "Refer to surgery."
    assert in_force["signed_by"]["full_name"] == users["expert"].full_name  # the expert's, not the district's
    [prelim] = parent["preliminary_opinions"]
    assert prelim["text"] == "Atypical glands; IHC?" and prelim["by"]["full_name"] == users["pathologist"].full_name
    assert tech.get(f"/api/v1/consultations/{child_id}").json["state"] == "returned"
    assert tech.get(f"/api/v1/consultations/{cid}").json["state"] == "returned"

    # Opening the result page does not acknowledge it; the clinician confirms version 1 explicitly.
    page = clin.get(f"/consultations/{cid}/result")
    assert page.status_code == 200 and "Adenocarcinoma" in page.get_data(as_text=True)
    assert clin.get(f"/api/v1/consultations/{cid}").json["state"] == "returned"
    _post(clin, f"/api/v1/consultations/{cid}/acknowledge", {"version": 1})
    assert clin.get(f"/api/v1/consultations/{cid}").json["state"] == "acknowledged"

    db.expire_all()
    parent_events = [e.transition for e in db.scalars(select(ConsultationEvent).where(
        ConsultationEvent.consultation_id == cid).order_by(ConsultationEvent.id))]
    assert parent_events == ["create", "submit", "assign", "accept", "request_info", "answer_info", "escalate",
                             "child_reported", "return_result", "acknowledge"]
    child_events = [e.transition for e in db.scalars(select(ConsultationEvent).where(
        ConsultationEvent.consultation_id == child_id).order_by(ConsultationEvent.id))]
    assert child_events == ["submit", "assign", "accept", "mark_reported", "return_result", "acknowledge"]
    audit = [a.action for a in db.scalars(select(AuditEvent).where(AuditEvent.case_id == case["id"]))]
    for action in ("consultation.submit", "consultation.escalate", "consultation.mark_reported",
                   "consultation.acknowledge", "report.signed"):
        assert action in audit
    final = db.get(Consultation, cid)
    assert final.acknowledged_at and final.reported_at and final.accepted_at and final.paused_intervals != "[]"


def test_quality_warnings_must_be_acknowledged(client_for, db, demo_case, users):
    from pathology_hub.models.cases import Slide as S
    db.add(S(uid="a" * 32, case_id=demo_case.id, status=SlideStatus.READY, label="A1",
             quality='{"warnings": [{"code": "blurry", "message": "out of focus"}]}'))
    db.commit()
    tech = client_for("tech")
    cid = _post(tech, f"/api/v1/cases/{demo_case.id}/consultations", {"question": "q"}, 201)["id"]
    refused = tech.post(f"/api/v1/consultations/{cid}/submit", json={})
    assert refused.status_code == 422 and refused.json["error"]["code"] == "warnings_not_acknowledged"
    assert refused.json["error"]["details"]["warnings"][0]["code"] == "blurry"
    ok = _post(tech, f"/api/v1/consultations/{cid}/submit", {"acknowledge_warnings": True})
    assert ok["warnings"][0]["code"] == "blurry" and ok["state"] == "triage"


def test_named_expert_is_preassigned(client_for, db, demo_case, users):
    from pathology_hub.models.cases import Slide as S
    db.add(S(uid="b" * 32, case_id=demo_case.id, status=SlideStatus.READY, label="A1"))
    db.commit()
    tech = client_for("tech")
    bad = tech.post(f"/api/v1/cases/{demo_case.id}/consultations",
                    json={"question": "q", "expert_id": users["tech2"].id})
    assert bad.status_code == 422 and bad.json["error"]["code"] == "invalid_expert"
    cid = _post(tech, f"/api/v1/cases/{demo_case.id}/consultations",
                {"question": "q", "expert_id": users["expert"].id}, 201)["id"]
    out = _post(tech, f"/api/v1/consultations/{cid}/submit")
    assert out["state"] == "assigned" and out["receiving_institution"] == "UNIV"
    assert out["assignee"]["username"] == "expert"
    # The district hospital was skipped: its pathologist does not see the case.
    assert client_for("pathologist").get(f"/api/v1/cases/{demo_case.id}").status_code == 404


def test_cancel_needs_reason_and_requester_side(client_for, db, make_consultation):
    from pathology_hub.models.consultations import ConsultationState as St
    c = make_consultation(St.IN_REVIEW, assignee="pathologist")
    path_c, clin = client_for("pathologist"), client_for("clinician")
    assert path_c.post(f"/api/v1/consultations/{c.id}/cancel", json={"reason": "x"}).status_code == 403
    missing = clin.post(f"/api/v1/consultations/{c.id}/cancel", json={})
    assert missing.status_code == 422 and missing.json["error"]["code"] == "missing_field"
    done = _post(clin, f"/api/v1/consultations/{c.id}/cancel", {"reason": "Patient transferred."})
    assert done["state"] == "cancelled" and done["cancel_reason"] == "Patient transferred."
    assert done["events"][-1]["reason"] == "Patient transferred."
