"""The report workflow through the HTTP API: drafting, conflicts, signing, immutability, versions."""

from __future__ import annotations

import json

from sqlalchemy import select

from pathology_hub.models import AuditEvent
from pathology_hub.models.consultations import Consultation, Notification
from pathology_hub.models.reports import ReportSignature, ReportVersion

from .conftest import DRAFT, ok, save, sign, signed_report, start_report


def _audit(db, action):
    db.expire_all()
    return db.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


def test_draft_is_written_by_the_assignee_only(client_for, scenario, db):
    cid = scenario.consultation_id
    # nobody but the assignee starts it; the centre cannot see a draft; other hospitals get 404
    assert client_for("expert").post(f"/api/v1/consultations/{cid}/report", json={}).status_code == 404
    assert client_for("tech").post(f"/api/v1/consultations/{cid}/report", json={}).status_code == 403
    p = client_for("pathologist")
    report = start_report(p, cid)
    assert report["current"]["status"] == "draft" and report["can"]["edit"] and report["can"]["sign"]
    assert report["current"]["specimen"] == "Core biopsy, Left breast"
    assert p.post(f"/api/v1/consultations/{cid}/report", json={}).json["error"]["code"] == "report_exists"
    rid = report["id"]
    for who in ("tech", "clinician"):
        assert client_for(who).get(f"/api/v1/reports/{rid}").status_code == 404
        assert client_for(who).get(f"/api/v1/consultations/{cid}/report").status_code == 404
    assert client_for("tech2").get(f"/api/v1/reports/{rid}").status_code == 404
    assert client_for("expert").get(f"/api/v1/reports/{rid}").status_code == 404
    assert client_for("tech").put(f"/api/v1/reports/{rid}", json={"revision": 1}).status_code == 404

    saved = save(p, report, DRAFT)
    assert saved["current"]["diagnosis"] == DRAFT["diagnosis"]
    assert saved["current"]["diagnosis_code_system"] == "ICD-O-3"
    assert saved["current"]["diagnosis_code_display"] == "Infiltrating duct carcinoma, NOS"
    assert saved["current"]["revision"] == 2
    bad = p.put(f"/api/v1/reports/{rid}", json={"revision": 2, "diagnosis_code": "9999/9"})
    assert bad.status_code == 422 and bad.json["error"]["code"] == "unknown_diagnosis_code"
    assert p.put(f"/api/v1/reports/{rid}", json={"diagnosis": "x"}).json["error"]["code"] == "revision_required"
    assert p.put(f"/api/v1/reports/{rid}", json={"revision": 2, "diagnosis": 5}).status_code == 422
    codes = ok(p.get("/api/v1/report-codes"))["codes"]
    assert {"system": "ICD-O-3", "code": "8140/3", "display": "Adenocarcinoma, NOS",
            "name": "Adenocarcinoma, NOS"} in codes  # name: in the reader's language


def test_two_editors_autosave_conflict_is_409_and_nothing_is_overwritten(client_for, scenario):
    p = client_for("pathologist")
    report = start_report(p, scenario.consultation_id)
    first = save(p, report, {"microscopic_description": "editor A"})
    # editor B still holds revision 1
    stale = p.put(f"/api/v1/reports/{report['id']}", json={"revision": 1, "microscopic_description": "editor B"})
    assert stale.status_code == 409
    err = stale.json["error"]
    assert err["code"] == "report_version_conflict"
    assert err["details"]["revision"] == first["current"]["revision"]
    assert err["details"]["current"]["microscopic_description"] == "editor A"
    # If-Match works as well
    resp = p.put(f"/api/v1/reports/{report['id']}", json={"comment": "c"},
                 headers={"If-Match": f'"{first["current"]["revision"]}"'})
    assert resp.status_code == 200 and resp.headers["ETag"] == f'"{first["current"]["revision"] + 1}"'
    assert ok(p.get(f"/api/v1/reports/{report['id']}"))["current"]["microscopic_description"] == "editor A"


def test_sign_requires_the_password_and_moves_the_consultation(client_for, scenario, db, users):
    p = client_for("pathologist")
    report = save(p, start_report(p, scenario.consultation_id), DRAFT)
    wrong = p.post(f"/api/v1/reports/{report['id']}/sign", json={"password": "not-my-password", "revision":
                                                                   report["current"]["revision"]})
    assert wrong.status_code == 401 and wrong.json["error"]["code"] == "invalid_password"
    assert len(_audit(db, "report.sign_failed")) == 1
    missing = p.post(f"/api/v1/reports/{report['id']}/sign", json={"revision": report["current"]["revision"]})
    assert missing.status_code == 422
    assert db.get(Consultation, scenario.consultation_id).state.value == "in_review"
    # another DIST1 pathologist cannot sign (no access: 404), the centre neither
    assert client_for("expert").post(f"/api/v1/reports/{report['id']}/sign", json={}).status_code == 404

    signed = sign(p, report)
    v = signed["current"]
    assert v["status"] == "signed" and v["signed_by"] == users["pathologist"].full_name
    assert len(v["verification_code"]) >= 16 and v["pdf_url"]
    sig = v["signatures"][0]
    assert sig["role"] == "signer" and sig["meaning"] and sig["timezone"] == "Asia/Shanghai"
    assert sig["signed_at"].endswith("+08:00")
    db.expire_all()
    c = db.get(Consultation, scenario.consultation_id)
    assert c.state.value == "returned" and not hasattr(c, "opinion")  # no copied diagnosis column
    from pathology_hub.domain import results
    in_force = results.result_in_force(db, c).in_force
    assert (in_force.diagnosis, in_force.recommendations, in_force.signer) == (
        DRAFT["diagnosis"], DRAFT["recommendations"], users["pathologist"].full_name)
    assert len(_audit(db, "report.signed")) == 1
    kinds = {n.kind for n in db.scalars(select(Notification).where(Notification.consultation_id == c.id))}
    assert "report_signed" in kinds
    # now the centre sees it
    seen = ok(client_for("clinician").get(f"/api/v1/reports/{report['id']}"))
    assert [x["status"] for x in seen["versions"]] == ["signed"]
    # annotations of the case become visible to technicians and clinicians with the signed report
    assert client_for("tech").get(f"/api/v1/slides/{scenario.slide_id}/annotations").status_code == 200


def test_signed_version_is_immutable_and_refusals_are_audited(client_for, scenario, db):
    report = signed_report(client_for, scenario)
    p = client_for("pathologist")
    rid, rev = report["id"], report["current"]["revision"]
    for resp in (p.put(f"/api/v1/reports/{rid}", json={"revision": rev, "diagnosis": "changed"}),
                 p.post(f"/api/v1/reports/{rid}/sign", json={"password": "demo-pass-2026", "revision": rev}),
                 p.post(f"/api/v1/reports/{rid}/figures", json={"slide_id": scenario.slide_id, "x": 0.5, "y": 0.4,
                                                                "zoom": 2, "container_width": 800,
                                                                "container_height": 600})):
        assert resp.status_code == 409 and resp.json["error"]["code"] == "report_signed", resp.json
    refused = _audit(db, "report.edit_refused")
    assert len(refused) == 3
    assert {json.loads(a.details)["attempted"] for a in refused} == {"update", "sign", "add_figure"}
    db.expire_all()
    assert db.scalars(select(ReportVersion)).one().diagnosis == DRAFT["diagnosis"]


def test_amendment_needs_a_reason_supersedes_and_notifies(client_for, scenario, db):
    report = signed_report(client_for, scenario)
    p, rid = client_for("pathologist"), report["id"]
    code1 = report["current"]["verification_code"]
    resp = p.post(f"/api/v1/reports/{rid}/versions", json={"kind": "amendment"})
    assert resp.status_code == 422 and resp.json["error"]["code"] == "missing_field"
    assert p.post(f"/api/v1/reports/{rid}/versions", json={"kind": "rewrite", "reason": "x"}).status_code == 422
    assert client_for("clinician").post(f"/api/v1/reports/{rid}/versions",
                                        json={"kind": "amendment", "reason": "x"}).status_code == 403
    draft = ok(p.post(f"/api/v1/reports/{rid}/versions",
                      json={"kind": "amendment", "reason": "HER2 result changes the grade"}), 201)
    assert draft["current"]["number"] == 2 and draft["current"]["status"] == "draft"
    assert draft["current"]["diagnosis"] == DRAFT["diagnosis"]  # copied from version 1
    # the clinician still sees only version 1
    assert [v["number"] for v in ok(client_for("clinician").get(f"/api/v1/reports/{rid}"))["versions"]] == [1]
    draft = save(p, draft, {"diagnosis": "Invasive ductal carcinoma, grade 3 / 浸润性导管癌，3级"})
    v2 = sign(p, draft)
    assert [(v["number"], v["status"]) for v in v2["versions"]] == [(1, "superseded"), (2, "signed")]
    assert v2["versions"][0]["superseded_by"] == 2 and v2["current"]["kind"] == "amendment"
    assert v2["current"]["verification_code"] != code1
    db.expire_all()
    c = db.get(Consultation, scenario.consultation_id)
    amended = db.scalars(select(Notification).where(Notification.kind == "report_amended",
                                                    Notification.consultation_id == c.id)).all()
    assert any(n.user_id == c.case.requesting_clinician_id for n in amended)
    # both versions stay downloadable; the old one now comes as its signed superseded copy
    clin = client_for("clinician")
    old = clin.get(f"/api/v1/reports/{rid}/versions/1/pdf")
    orig = clin.get(f"/api/v1/reports/{rid}/versions/1/pdf?original=1")
    assert old.status_code == orig.status_code == 200 and old.data != orig.data
    assert old.data.startswith(b"%PDF") and orig.data.startswith(b"%PDF")
    latest = clin.get(f"/api/v1/reports/{rid}/pdf")
    assert latest.status_code == 200 and latest.data != old.data
    assert len(_audit(db, "report.superseded")) == 1


def test_addendum_keeps_the_diagnosis(client_for, scenario):
    report = signed_report(client_for, scenario)
    p, rid = client_for("pathologist"), report["id"]
    draft = ok(p.post(f"/api/v1/reports/{rid}/versions", json={"kind": "addendum"}), 201)
    changed = save(p, draft, {"diagnosis": "Something else", "comment": "ER positive."})
    resp = p.post(f"/api/v1/reports/{rid}/sign", json={"password": "demo-pass-2026",
                                                        "revision": changed["current"]["revision"]})
    assert resp.status_code == 422 and resp.json["error"]["code"] == "addendum_changes_diagnosis"
    fixed = save(p, changed, {"diagnosis": DRAFT["diagnosis"]})
    signed = sign(p, fixed)
    assert signed["current"]["kind"] == "addendum" and signed["current"]["comment"] == "ER positive."
    assert p.post(f"/api/v1/reports/{rid}/versions", json={"kind": "addendum"}).status_code == 201
    assert p.post(f"/api/v1/reports/{rid}/versions",
                  json={"kind": "addendum"}).json["error"]["code"] == "report_draft_exists"


def test_escalated_case_expert_signs_final_report_and_district_pathologist_cosigns(client_for, scenario, db, users):
    from pathology_hub.domain import consultations as svc
    parent = db.get(Consultation, scenario.consultation_id)
    child = svc.escalate(db, users["pathologist"], parent, "Atypical ductal proliferation; IHC advised.",
                         expert_id=users["expert"].id)
    svc.accept(db, users["expert"], child)
    db.commit()
    p, e = client_for("pathologist"), client_for("expert")
    # the district pathologist cannot write a report on the escalated parent; the expert writes the child's
    assert p.post(f"/api/v1/consultations/{parent.id}/report", json={}).json["error"]["code"] == "invalid_state"
    assert p.post(f"/api/v1/consultations/{child.id}/report", json={}).status_code == 403
    report = save(e, start_report(e, child.id), DRAFT)
    assert report["preliminary_opinion"] == "Atypical ductal proliferation; IHC advised."
    # the district pathologist follows the draft but may not sign it
    assert ok(p.get(f"/api/v1/reports/{report['id']}"))["can"]["sign"] is False
    assert p.post(f"/api/v1/reports/{report['id']}/sign", json={"password": "demo-pass-2026",
                                                                 "revision": report["current"]["revision"]}
                  ).status_code == 403
    signed = sign(e, report)
    db.expire_all()
    assert db.get(Consultation, child.id).state.value == "returned"
    assert db.get(Consultation, parent.id).state.value == "returned"  # child_reported, then returned with it
    from pathology_hub.domain import results
    parent_result = results.result_in_force(db, db.get(Consultation, parent.id))
    assert parent_result.in_force.diagnosis == DRAFT["diagnosis"]
    assert parent_result.in_force.signer == users["expert"].full_name  # the expert's, not the district's
    assert parent_result.in_force.institution == users["expert"].institution.name

    rid = signed["id"]
    # the buttons say what the co-signing rules say (domain/report_permissions.py, shared by both)
    assert ok(e.get(f"/api/v1/reports/{rid}"))["can"]["cosign"] is False  # the signer
    assert ok(p.get(f"/api/v1/reports/{rid}"))["can"]["cosign"] is True
    assert e.post(f"/api/v1/reports/{rid}/cosign",
                  json={"password": "demo-pass-2026"}).json["error"]["code"] == "cosigner_is_signer"
    assert client_for("clinician").post(f"/api/v1/reports/{rid}/cosign",
                                        json={"password": "demo-pass-2026"}).status_code == 403
    assert client_for("tech2").post(f"/api/v1/reports/{rid}/cosign", json={}).status_code == 404
    assert p.post(f"/api/v1/reports/{rid}/cosign", json={"password": "wrong-password"}).status_code == 401
    before = client_for("clinician").get(f"/api/v1/reports/{rid}/pdf").data
    cos = ok(p.post(f"/api/v1/reports/{rid}/cosign", json={"password": "demo-pass-2026"}))
    assert [s["role"] for s in cos["current"]["signatures"]] == ["signer", "co-signer"]
    assert cos["can"]["cosign"] is False and ok(p.get(f"/api/v1/reports/{rid}"))["can"]["cosign"] is False
    assert p.post(f"/api/v1/reports/{rid}/cosign",
                  json={"password": "demo-pass-2026"}).json["error"]["code"] == "report_already_cosigned"
    after = client_for("clinician").get(f"/api/v1/reports/{rid}/pdf").data
    assert after != before and after.startswith(b"%PDF")
    roles = [s.role for s in db.scalars(select(ReportSignature).order_by(ReportSignature.id))]
    assert roles == ["signer", "co-signer"]
    verified = ok(client_for(None).get(f"/api/v1/verify/{signed['current']['verification_code']}"))
    assert verified["valid"] and [s["role"] for s in verified["signatures"]] == ["signer", "co-signer"]
    assert {f["kind"] for f in verified["files"]} == {"original", "cosigned"}
