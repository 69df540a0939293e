"""Access along the referral chain, decided by the grant the workflow registers with the policy."""

from __future__ import annotations

import pytest

from pathology_hub.domain import accounts
from pathology_hub.models.consultations import ConsultationState as S


@pytest.fixture
def dist2_pathologist(world, insts):
    accounts.create_user(world, username="path2", full_name="DIST2 pathologist", password="demo-pass-2026",
                         role="pathologist", institution=insts["DIST2"], subspecialties="gastrointestinal")
    world.commit()


def _sees(client, case_id) -> bool:
    code = client.get(f"/api/v1/cases/{case_id}").status_code
    assert code in (200, 404)
    return code == 200


def test_access_follows_the_request(client_for, make_consultation, demo_case, dist2_pathologist, db):
    path_c, admin, expert, path2 = (client_for(n) for n in ("pathologist", "admin", "expert", "path2"))
    tech, clin = client_for("tech"), client_for("clinician")
    cid = demo_case.id

    draft = make_consultation(S.DRAFT)
    assert not _sees(path_c, cid) and not _sees(admin, cid)
    draft.state, draft.receiving_institution_id = S.TRIAGE, draft.case.institution.refers_to[0].id
    db.commit()
    # Triage at DIST1: its pathologists and admins; never DIST2 or the university.
    assert _sees(path_c, cid) and _sees(admin, cid)
    assert not _sees(path2, cid) and not _sees(expert, cid)
    assert path2.get(f"/api/v1/consultations/{draft.id}").status_code == 404
    assert path2.get(f"/cases/{cid}").status_code == 404
    # The originating centre always sees its own case.
    assert _sees(tech, cid) and _sees(clin, cid)


def test_assignment_escalation_and_decline(client_for, make_consultation, demo_case, users, db):
    path_c, admin, expert = client_for("pathologist"), client_for("admin"), client_for("expert")
    cid = demo_case.id
    c = make_consultation(S.TRIAGE)
    assert path_c.post(f"/api/v1/consultations/{c.id}/assign", json={"assignee_id": users["pathologist"].id}).status_code == 200
    assert _sees(path_c, cid) and not _sees(admin, cid)
    path_c.post(f"/api/v1/consultations/{c.id}/accept")
    resp = path_c.post(f"/api/v1/consultations/{c.id}/escalate", json={"preliminary_opinion": "p"})
    child_id = resp.json["child_id"]
    # Escalation extends access to triage at the university; the district pathologist keeps it.
    assert _sees(expert, cid) and _sees(path_c, cid)
    # the preliminary opinion is stored once, on the escalation, and stays the district pathologist's
    assert expert.get(f"/api/v1/consultations/{child_id}").json["preliminary_opinion"] == "p"
    [prelim] = expert.get(f"/api/v1/consultations/{c.id}").json["preliminary_opinions"]
    assert prelim["text"] == "p" and prelim["by"]["id"] == users["pathologist"].id
    assert prelim["by"]["institution_code"] == "DIST1"
    assert expert.post(f"/api/v1/consultations/{child_id}/assign", json={"assignee_id": users["expert"].id}).status_code == 200
    # The expert declines: back to triage at UNIV, and the decliner loses access.
    bad = expert.post(f"/api/v1/consultations/{child_id}/decline", json={})
    assert bad.status_code == 422 and bad.json["error"]["code"] == "missing_field"
    ok = expert.post(f"/api/v1/consultations/{child_id}/decline", json={"reason": "On leave."})
    assert ok.status_code == 200 and ok.json["state"] == "triage"
    assert not _sees(expert, cid) and expert.get(f"/api/v1/consultations/{child_id}").status_code == 404
    assert _sees(path_c, cid)  # the district pathologist still has the parent
    # Nobody else at UNIV can take it: auto-assign finds no pathologist.
    db.expire_all()
    from pathology_hub.domain import consultations as svc
    from pathology_hub.models.consultations import Consultation
    child = db.get(Consultation, child_id)
    assert svc.candidates(db, child) == []


def test_actor_checks_after_state(client_for, make_consultation, users):
    c = make_consultation(S.TRIAGE)
    tech = client_for("tech")
    assert tech.post(f"/api/v1/consultations/{c.id}/assign", json={}).status_code == 403
    path_c = client_for("pathologist")
    wrong = path_c.post(f"/api/v1/consultations/{c.id}/assign", json={"assignee_id": users["expert"].id})
    assert wrong.status_code == 422 and wrong.json["error"]["code"] == "invalid_assignee"
    assigned = make_consultation(S.ASSIGNED, assignee="pathologist")
    # The admin sees the case (the other request waits in triage at DIST1) but is not the assignee.
    assert client_for("admin").post(f"/api/v1/consultations/{assigned.id}/accept").status_code == 403
    in_review = make_consultation(S.IN_REVIEW, assignee="pathologist")
    assert client_for("clinician").post(f"/api/v1/consultations/{in_review.id}/report", json={}).status_code == 403
    # there is no way to mark a request reported except signing its report
    assert client_for("pathologist").post(f"/api/v1/consultations/{in_review.id}/mark-reported",
                                          json={"opinion": "x"}).status_code == 404


def test_auto_assign_picks_least_loaded_with_subspecialty(world, insts, users, make_consultation):
    from pathology_hub.domain import consultations as svc
    second = accounts.create_user(world, username="path1b", full_name="Second", password="demo-pass-2026",
                                  role="pathologist", institution=insts["DIST1"], subspecialties="breast")
    world.commit()
    make_consultation(S.IN_REVIEW, assignee="pathologist")  # pathologist has load 1, path1b 0
    c = make_consultation(S.TRIAGE)
    assert svc.assign(world, users["admin"], c).id == second.id
    c2 = make_consultation(S.TRIAGE)
    c2.subspecialty = "gastrointestinal"  # only "pathologist" has it, despite the higher load
    assert svc.assign(world, users["admin"], c2).id == users["pathologist"].id
