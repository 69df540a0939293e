"""Worklists per role (JSON and home page), the consultation pages, the dashboard and the demo data."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from pathology_hub.models import Case, Priority, utcnow
from pathology_hub.models.consultations import Consultation, ConsultationState as S


def _ids(resp, name):
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return [i["id"] for i in resp.json["worklists"][name]]


def test_worklists_per_role_with_filters_and_flags(client_for, make_consultation, db):
    draft = make_consultation(S.DRAFT)
    waiting = make_consultation(S.INFO_REQUESTED, assignee="pathologist")
    triage = make_consultation(S.TRIAGE)
    mine = make_consultation(S.IN_REVIEW, assignee="pathologist")
    returned = make_consultation(S.RETURNED, assignee="pathologist")
    now = utcnow()
    for c, hours in ((triage, 1), (mine, 23)):
        c.priority, c.submitted_at = Priority.URGENT, now - dt.timedelta(hours=hours)
    triage.priority = Priority.ROUTINE
    db.commit()

    tech = client_for("tech").get("/api/v1/worklist")
    assert sorted(_ids(tech, "technician")) == sorted([draft.id, waiting.id, returned.id])
    path_c = client_for("pathologist").get("/api/v1/worklist").json["worklists"]
    assert [i["id"] for i in path_c["triage"]] == [triage.id]
    assert {i["id"] for i in path_c["pathologist"]} == {waiting.id, mine.id}
    flagged = next(i for i in path_c["pathologist"] if i["id"] == mine.id)
    assert flagged["flag"] == "approaching" and flagged["tat"]["fraction"] > 0.8
    assert _ids(client_for("admin").get("/api/v1/worklist"), "triage") == [triage.id]
    assert _ids(client_for("clinician").get("/api/v1/worklist"), "clinician") == [returned.id]
    assert client_for("expert").get("/api/v1/worklist").json["worklists"] == {"pathologist": [], "triage": []}

    c = client_for("pathologist")
    assert _ids(c.get("/api/v1/worklist?flag=approaching"), "pathologist") == [mine.id]
    assert _ids(c.get("/api/v1/worklist?state=info_requested"), "pathologist") == [waiting.id]
    assert _ids(c.get("/api/v1/worklist?priority=urgent&institution=COMM1"), "pathologist") == [mine.id]
    assert _ids(c.get("/api/v1/worklist?institution=COMM2"), "pathologist") == []
    assert _ids(c.get("/api/v1/worklist?older_than_hours=10"), "triage") == []
    assert _ids(c.get("/api/v1/worklist?sort=age&order=desc"), "pathologist")[-1] == mine.id
    bad = c.get("/api/v1/worklist?sort=colour")
    assert bad.status_code == 422 and bad.json["error"]["code"] == "invalid_choice"

    home = c.get("/").get_data(as_text=True)
    assert 'data-testid="worklist-pathologist"' in home and 'data-testid="worklist-triage"' in home
    assert "tat-approaching" in home


def test_pages_render_and_act(client_for, make_consultation, db, demo_case):
    c = make_consultation(S.TRIAGE)
    admin = client_for("admin")
    page = admin.get(f"/consultations/{c.id}").get_data(as_text=True)
    assert 'data-testid="action-assign"' in page and "DEMO-2026-001" in page
    resp = admin.post(f"/consultations/{c.id}/act", data={"transition": "assign", "assignee_id": ""})
    assert resp.status_code == 302  # auto-assigned, then the admin no longer sees it: back home
    db.expire_all()
    assert db.get(Consultation, c.id).state is S.ASSIGNED
    assert admin.get(resp.headers["Location"]).status_code == 200

    tech = client_for("tech")
    case_page = tech.get(f"/cases/{demo_case.id}").get_data(as_text=True)
    assert 'data-testid="consultations"' in case_page and 'data-testid="create-consultation"' in case_page
    created = tech.post(f"/cases/{demo_case.id}/consultations", data={"question": "Please review."})
    assert created.status_code == 302 and "/consultations/" in created.headers["Location"]
    assert tech.post(f"/cases/{demo_case.id}/consultations", data={"question": ""}).status_code == 302


def test_turnaround_dashboard_for_admins(client_for, make_consultation, db):
    c = make_consultation(S.IN_REVIEW, assignee="pathologist")
    c.submitted_at, c.assigned_at = utcnow() - dt.timedelta(hours=3), utcnow() - dt.timedelta(hours=1)
    db.commit()
    admin = client_for("admin")
    assert "submitted → assigned" in admin.get("/admin/turnaround").get_data(as_text=True)
    data = admin.get("/api/v1/turnaround").json
    assert data["institution"][0]["stage"] == "submitted_to_assigned" and data["institution"][0]["median_hours"] == 2.0
    csv = admin.get("/api/v1/turnaround?format=csv")
    assert csv.mimetype == "text/csv" and csv.get_data(as_text=True).startswith("group_type,group,stage")
    assert client_for("pathologist").get("/api/v1/turnaround").status_code == 403
    assert client_for("pathologist").get("/admin/turnaround").status_code == 403


def test_zh_pages(client_for, make_consultation):
    c = make_consultation(S.TRIAGE)
    admin = client_for("admin")
    admin.post("/lang", data={"lang": "zh_CN", "csrf_token": admin.csrf})
    assert "分诊" in admin.get("/").get_data(as_text=True)
    assert "历史" in admin.get(f"/consultations/{c.id}").get_data(as_text=True)


def test_demo_consultations(world):
    from pathology_hub.demo import ensure_demo_consultations
    ensure_demo_consultations(world)
    world.commit()
    ensure_demo_consultations(world)  # idempotent
    world.commit()
    states = {c.case.case_number + (":child" if c.parent_id else ""): c.state.value
              for c in world.scalars(select(Consultation))}
    assert states == {"DEMO-C-001": "triage", "DEMO-C-002": "in_review", "DEMO-C-003": "info_requested",
                      "DEMO-C-004": "escalated", "DEMO-C-004:child": "triage", "DEMO-C-005": "returned"}
    assert world.scalar(select(Case).where(Case.case_number == "DEMO-C-001")).slides == []
