"""The admin audit page: filters, pagination, chain status, and the audited CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

from sqlalchemy import select, text

from pathology_hub.domain import audit
from pathology_hub.models import AuditEvent, Case

ROW_RE = re.compile(r'data-audit-id="(\d+)"')


def _shown(resp) -> list[int]:
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    return [int(i) for i in ROW_RE.findall(resp.get_data(as_text=True))]


def _all(db, *where) -> list[int]:
    db.expire_all()
    return list(db.scalars(select(AuditEvent.id).where(*where).order_by(AuditEvent.seq.desc())))


def _make_case(tech, number: str) -> int:
    resp = tech.post("/api/v1/cases", json={"case_number": number, "patient_pseudo_id": "P-" + number})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.json["id"]


def test_filters_by_case_user_action_and_time(client_for, world):
    tech, admin = client_for("tech"), client_for("admin")
    case_id = _make_case(tech, "AUD-F1")
    _make_case(tech, "AUD-F2")
    assert tech.patch(f"/api/v1/cases/{case_id}", json={"clinical_history": "x"}).status_code == 200

    everything = _shown(admin.get("/admin/audit"))
    assert everything == _all(world)[:100] and everything == sorted(everything, reverse=True)

    by_number = _shown(admin.get("/admin/audit", query_string={"case": "AUD-F1"}))
    assert by_number and by_number == _all(world, AuditEvent.case_id == case_id)
    assert _shown(admin.get("/admin/audit", query_string={"case": str(case_id)})) == by_number
    assert _shown(admin.get("/admin/audit", query_string={"case": "NO-SUCH-CASE"})) == []

    by_user = _shown(admin.get("/admin/audit", query_string={"user": "tech"}))
    assert by_user and by_user == _all(world, AuditEvent.actor_name == "tech")

    logins = _shown(admin.get("/admin/audit", query_string={"action": "login"}))
    assert logins == _all(world, AuditEvent.action.like("login%"))
    # The prefix is literal: "_" and "%" are not wildcards.
    assert _shown(admin.get("/admin/audit", query_string={"action": "log_n"})) == []

    today = dt.datetime.now(dt.timezone.utc).date()
    same_day = _shown(admin.get("/admin/audit", query_string={"from": today.isoformat(), "to": today.isoformat()}))
    assert set(same_day) >= set(by_number)
    tomorrow = (today + dt.timedelta(days=1)).isoformat()
    assert _shown(admin.get("/admin/audit", query_string={"from": tomorrow})) == []
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    assert _shown(admin.get("/admin/audit", query_string={"to": yesterday})) == []

    combined = _shown(admin.get("/admin/audit", query_string={"case": "AUD-F1", "user": "tech", "action": "case."}))
    assert combined == _all(world, AuditEvent.case_id == case_id, AuditEvent.actor_name == "tech",
                            AuditEvent.action.like("case.%"))


def test_bad_dates_are_a_clear_error(client_for):
    admin = client_for("admin")
    resp = admin.get("/admin/audit", query_string={"from": "23/11/2026"})
    assert resp.status_code == 422 and "YYYY-MM-DD" in resp.get_data(as_text=True)
    resp = admin.get("/admin/audit", query_string={"from": "2026-11-23", "to": "2026-11-01"})
    assert resp.status_code == 422
    resp = admin.get("/admin/audit.csv", query_string={"to": "yesterday"})
    assert resp.status_code == 422 and "Traceback" not in resp.get_data(as_text=True)


def test_pagination_newest_first(client_for, world):
    admin = client_for("admin")
    for i in range(130):
        audit.record(world, "test.page", details={"i": i})
    world.commit()
    ids = _all(world, AuditEvent.action == "test.page")
    first = admin.get("/admin/audit", query_string={"action": "test.page"})
    assert _shown(first) == ids[:100] and 'data-testid="audit-next"' in first.get_data(as_text=True)
    second = admin.get("/admin/audit", query_string={"action": "test.page", "page": "2"})
    assert _shown(second) == ids[100:] and 'data-testid="audit-next"' not in second.get_data(as_text=True)
    assert _shown(admin.get("/admin/audit", query_string={"action": "test.page", "page": "x"})) == ids[:100]


def test_chain_status_and_full_verification(client_for, world):
    admin = client_for("admin")
    page = admin.get("/admin/audit", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "entries: intact" in page
    resp = admin.post("/admin/audit/verify", data={"csrf_token": admin.csrf})
    assert resp.status_code == 302
    assert "Audit chain intact" in admin.get("/admin/audit", headers={"Accept-Language": "en"}).get_data(as_text=True)

    victim = _all(world)[-2]  # an old entry
    from pathology_hub.db import get_engine
    with get_engine().begin() as conn:
        conn.execute(text("UPDATE audit_events SET ip = '10.6.6.6' WHERE id = :id"), {"id": victim})
    page = admin.get("/admin/audit", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert f"BROKEN at entry {victim}" in page
    admin.post("/admin/audit/verify", data={"csrf_token": admin.csrf})
    page = admin.get("/admin/audit", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert f"Audit chain broken at entry {victim}" in page
    assert world.scalar(select(AuditEvent).where(AuditEvent.action == "audit.verified")
                        .order_by(AuditEvent.seq.desc()).limit(1)).details.count('"intact": false') == 1


def test_csv_export_is_excel_friendly_filtered_and_audited(client_for, world):
    tech, admin = client_for("tech"), client_for("admin")
    case_id = _make_case(tech, "AUD-CSV")
    audit.record(world, "case.note", object_type="case", object_id=case_id, case_id=case_id,
                 details={"reason": "复核切片", "formula": "=1+1"}, actor_name="tech")
    audit.record(world, "case.note", object_type="case", object_id=999, case_id=None, details={}, actor_name="x")
    world.commit()

    resp = admin.get("/admin/audit.csv", query_string={"case": "AUD-CSV"})
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in resp.headers["Content-Disposition"]
    body = resp.get_data()
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == list(audit.CSV_COLUMNS)
    expected = _all(world, AuditEvent.case_id == case_id)
    assert [int(r[0]) for r in rows[1:]] == expected
    note = next(r for r in rows[1:] if r[4] == "case.note")
    assert "复核切片" in note[9] and note[7] == str(case_id) and len(note[10]) == 64
    created = next(r for r in rows[1:] if r[4] == "case.create")
    assert created[2] == "tech" and created[3] == "COMM1"

    world.expire_all()
    exported = world.scalar(select(AuditEvent).where(AuditEvent.action == "audit.exported")
                            .order_by(AuditEvent.seq.desc()).limit(1))
    assert exported.actor_name == "admin" and '"case": "AUD-CSV"' in exported.details


def test_csv_neutralises_spreadsheet_formulas(client_for, world):
    admin = client_for("admin")
    audit.record(world, "test.formula", actor_name="=HYPERLINK(\"x\")", object_id="@SUM(A1)")
    world.commit()
    rows = list(csv.reader(io.StringIO(admin.get("/admin/audit.csv", query_string={"action": "test.formula"})
                                       .get_data().decode("utf-8-sig"))))
    assert rows[1][2].startswith("'=") and rows[1][6].startswith("'@")


def test_only_admins_see_the_trail(client_for):
    for role in ("tech", "pathologist", "expert", "clinician"):
        c = client_for(role)
        assert c.get("/admin/audit").status_code == 403
        assert c.get("/admin/audit.csv").status_code == 403
        assert c.post("/admin/audit/verify", data={"csrf_token": c.csrf}).status_code == 403
    assert client_for().get("/admin/audit.csv").status_code == 302


def test_admin_nav_links_to_the_audit_page(client_for):
    page = client_for("admin").get("/admin/users").get_data(as_text=True)
    assert 'href="/admin/audit"' in page
    assert 'href="/admin/audit"' not in client_for("tech").get("/").get_data(as_text=True)


def test_no_patient_names_in_the_trail(client_for, world):
    tech, admin = client_for("tech"), client_for("admin")
    resp = tech.post("/api/v1/cases", json={"case_number": "AUD-PN", "patient_pseudo_id": "P-PN",
                                            "patient_name": "张三丰"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert world.scalar(select(Case.patient_name).where(Case.case_number == "AUD-PN")) == "张三丰"
    assert "张三丰" not in admin.get("/admin/audit").get_data(as_text=True)
    assert "张三丰" not in admin.get("/admin/audit.csv").get_data().decode("utf-8-sig")
