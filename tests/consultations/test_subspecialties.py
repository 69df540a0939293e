"""Subspecialties are codes of a configurable list: requests and profiles choose from it, automatic
assignment compares codes, and a request whose subspecialty nobody has can still be assigned."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from pathology_hub.domain import accounts, subspecialties
from pathology_hub.domain import consultations as svc
from pathology_hub.migrate import upgrade
from pathology_hub.models import User
from pathology_hub.models.consultations import ConsultationEvent, ConsultationState as S


# ---------------------------------------------------------------- the vocabulary
def test_default_list_has_chinese_and_english_labels():
    items = subspecialties.all_subspecialties()
    codes = {s.code for s in items}
    assert {"gastrointestinal", "breast", "gynecologic", "genitourinary", "pulmonary", "head_neck",
            "dermatopathology", "hematopathology", "neuropathology", "bone_soft_tissue", "cytopathology",
            "pediatric", "renal", "cardiovascular", "endocrine", "hepatobiliary_pancreatic"} <= codes
    gi = subspecialties.find("gastrointestinal")
    assert gi.label("zh_CN") == "消化病理" and gi.label("en") == "Gastrointestinal pathology"
    for text in ("消化病理", "消化", "GI", "Gastrointestinal", " gastrointestinal pathology "):
        assert subspecialties.match_text(text) == "gastrointestinal", text
    assert subspecialties.match_text("乳腺") == "breast"
    assert subspecialties.match_text("no such thing") is None


def test_list_is_configurable_by_file(tmp_path, monkeypatch):
    path = tmp_path / "subs.json"
    path.write_text(json.dumps({"subspecialties": [{"code": "gi", "zh": "消化", "en": "GI"}]}), encoding="utf-8")
    monkeypatch.setenv("SUBSPECIALTIES_FILE", str(path))
    assert [s.code for s in subspecialties.all_subspecialties()] == ["gi"]
    assert subspecialties.validate_codes(["gi", "gi"]) == "gi"
    with pytest.raises(subspecialties.ValidationFailed) as err:
        subspecialties.validate_code("breast")
    assert err.value.code == "unknown_subspecialty" and err.value.details["allowed"] == ["gi"]
    path.write_text(json.dumps({"subspecialties": [{"code": "Bad Code", "zh": "x", "en": "x"}]}))
    with pytest.raises(subspecialties.SubspecialtiesMisconfigured):
        subspecialties.all_subspecialties()


def test_api_lists_the_vocabulary(client_for):
    r = client_for("tech").get("/api/v1/subspecialties", headers={"Accept-Language": "zh-CN"})
    assert r.status_code == 200
    gi = next(s for s in r.get_json()["subspecialties"] if s["code"] == "gastrointestinal")
    assert gi == {"code": "gastrointestinal", "label_zh": "消化病理", "label_en": "Gastrointestinal pathology",
                  "label": "消化病理"}  # tech has no saved locale: the browser's language decides


# ---------------------------------------------------------------- requests
def test_request_accepts_codes_and_refuses_free_text(client_for, demo_case):
    tech = client_for("tech")
    url = f"/api/v1/cases/{demo_case.id}/consultations"
    r = tech.post(url, json={"question": "胃窦活检：癌？", "subspecialty": "消化病理"})
    assert r.status_code == 422
    err = r.get_json()["error"]
    assert err["code"] == "unknown_subspecialty" and err["details"]["field"] == "subspecialty"
    assert "gastrointestinal" in err["details"]["allowed"]
    r = tech.post(url, json={"question": "胃窦活检：癌？", "subspecialty": "gastrointestinal"})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["subspecialty"] == "gastrointestinal"
    assert r.get_json()["subspecialty_label"] == "Gastrointestinal pathology"


def test_unknown_code_message_in_chinese(client_for, demo_case):
    tech = client_for("tech")
    tech.post("/lang", data={"lang": "zh_CN"})
    r = tech.post(f"/api/v1/cases/{demo_case.id}/consultations", json={"question": "q", "subspecialty": "消化病理"},
                  headers={"Accept-Language": "zh-CN"})
    assert r.status_code == 422 and "未知的亚专科" in r.get_json()["error"]["message"], r.get_json()


def test_request_form_offers_the_list_in_the_users_language(client_for, demo_case):
    tech = client_for("tech")
    page = tech.get(f"/cases/{demo_case.id}", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert 'select name="subspecialty"' in page
    assert '<option value="gastrointestinal">消化病理</option>' in page or \
        '<option value="gastrointestinal">Gastrointestinal pathology</option>' in page
    r = tech.post(f"/cases/{demo_case.id}/consultations",
                  data={"question": "胃窦活检", "subspecialty": "gastrointestinal", "csrf_token": tech.csrf})
    assert r.status_code == 302


# ---------------------------------------------------------------- profiles
def test_admin_edits_a_pathologists_subspecialties(client_for, users, world):
    admin = client_for("admin")
    target = users["pathologist"]
    r = admin.post(f"/admin/users/{target.id}/subspecialties",
                   data={"subspecialties": ["renal", "breast"], "csrf_token": admin.csrf})
    assert r.status_code == 302
    world.expire_all()
    assert world.get(User, target.id).subspecialties == "breast,renal"  # in the list's order
    page = admin.get("/admin/users").get_data(as_text=True)
    assert "Breast pathology, Renal pathology" in page
    # unknown codes are refused with a JSON code, the profile is unchanged
    r = admin.put(f"/api/v1/users/{target.id}/subspecialties", json={"subspecialties": ["消化病理"]})
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "unknown_subspecialty"
    r = admin.put(f"/api/v1/users/{target.id}/subspecialties", json={"subspecialties": ["gastrointestinal"]})
    assert r.status_code == 200 and r.get_json()["subspecialties"] == ["gastrointestinal"]
    # only admins
    assert client_for("pathologist").put(f"/api/v1/users/{target.id}/subspecialties",
                                         json={"subspecialties": []}).status_code == 403
    entries = world.execute(sa.text("SELECT details FROM audit_events WHERE action = 'user.subspecialties'")).all()
    assert len(entries) == 2


def test_create_user_refuses_unknown_codes(world, insts):
    with pytest.raises(subspecialties.ValidationFailed):
        accounts.create_user(world, username="p9", full_name="P9", password="demo-pass-2026", role="pathologist",
                             institution=insts["DIST1"], subspecialties="消化病理")


# ---------------------------------------------------------------- triage
def test_chinese_chosen_request_is_assigned_to_the_specialist(client_for, make_consultation, users, world, insts):
    """The deadlock of issue 15: a request for 消化病理 must reach the pathologist tagged gastrointestinal."""
    accounts.create_user(world, username="path1b", full_name="Breast only", password="demo-pass-2026",
                         role="pathologist", institution=insts["DIST1"], subspecialties="breast")
    world.commit()
    c = make_consultation(S.TRIAGE)
    c.subspecialty = subspecialties.validate_code("gastrointestinal")
    world.commit()
    admin = client_for("admin")
    page = admin.get(f"/consultations/{c.id}", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert 'data-testid="no-subspecialty-match"' not in page
    r = admin.post(f"/api/v1/consultations/{c.id}/assign", json={})
    assert r.status_code == 200 and r.get_json()["assigned_to"] == "pathologist"


def test_no_match_falls_back_to_any_active_pathologist(client_for, make_consultation, users, world):
    c = make_consultation(S.TRIAGE)
    c.subspecialty = "neuropathology"  # nobody at DIST1 has it
    world.commit()
    assert svc.specialists(world, c) == [] and svc.no_subspecialty_match(world, c)
    assert [u.username for u in svc.candidates(world, c)] == ["pathologist"]
    admin = client_for("admin")
    page = admin.get(f"/consultations/{c.id}").get_data(as_text=True)
    assert 'data-testid="no-subspecialty-match"' in page and "Neuropathology" in page
    assert f'<option value="{users["pathologist"].id}">' in page
    r = admin.post(f"/api/v1/consultations/{c.id}/assign", json={})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["assigned_to"] == "pathologist" and r.get_json()["state"] == "assigned"
    world.expire_all()
    ev = world.scalar(select(ConsultationEvent).where(ConsultationEvent.consultation_id == c.id,
                                                      ConsultationEvent.transition == "assign"))
    assert ev.reason == "auto_no_subspecialty_match"
    history = client_for("pathologist").get(f"/consultations/{c.id}").get_data(as_text=True)
    assert "automatic; no pathologist has the subspecialty" in history


def test_manual_assignment_of_a_non_specialist_is_allowed(client_for, make_consultation, users, world, insts):
    other = accounts.create_user(world, username="path1c", full_name="Generalist", password="demo-pass-2026",
                                 role="pathologist", institution=insts["DIST1"])
    world.commit()
    c = make_consultation(S.TRIAGE)
    c.subspecialty = "gastrointestinal"
    world.commit()
    assert [u.username for u in svc.candidates(world, c)] == ["pathologist", "path1c"]  # specialists first
    r = client_for("admin").post(f"/api/v1/consultations/{c.id}/assign", json={"assignee_id": other.id})
    assert r.status_code == 200 and r.get_json()["assigned_to"] == "path1c"


# ---------------------------------------------------------------- migration of free text
def _insert(conn, table_name: str, **values) -> None:
    """Insert a row as an older application would, filling NOT NULL columns the test does not care about."""
    import datetime as dt
    table = sa.Table(table_name, sa.MetaData(), autoload_with=conn)
    for col in table.columns:
        if col.name in values or col.nullable or col.primary_key or col.server_default is not None:
            continue
        try:
            kind = col.type.python_type
        except NotImplementedError:
            kind = str
        values[col.name] = {int: 0, bool: False, dt.datetime: dt.datetime(2026, 1, 1),
                            dt.date: dt.date(2026, 1, 1)}.get(kind, "")
    conn.execute(table.insert().values(**values))


def test_migration_maps_free_text_to_codes(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0006")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _insert(conn, "institutions", id=1, code="D", name="D", tier="district", active=True)
        for uid, subs in ((1, "gastrointestinal, breast"), (2, "消化病理，乳腺"), (3, "GI, tropical"), (4, "")):
            _insert(conn, "users", id=uid, username=f"user{uid}", full_name="u", role="pathologist",
                    institution_id=1, active=True, subspecialties=subs)
        _insert(conn, "cases", id=1, institution_id=1, case_number="C1", sex="female", priority="routine",
                created_by_id=1)
        for cid, text in ((1, "消化病理"), (2, "Breast"), (3, "热带病理"), (4, "")):
            _insert(conn, "consultations", id=cid, case_id=1, state="triage", priority="routine",
                    requesting_institution_id=1, created_by_id=1, subspecialty=text)
    upgrade(url)
    with engine.connect() as conn:
        subs = dict(conn.execute(sa.text("SELECT id, subspecialties FROM users")).all())
        wanted = dict(conn.execute(sa.text("SELECT id, subspecialty FROM consultations")).all())
    engine.dispose()
    assert subs == {1: "gastrointestinal,breast", 2: "gastrointestinal,breast", 3: "gastrointestinal,tropical", 4: ""}
    assert wanted == {1: "gastrointestinal", 2: "breast", 3: "热带病理", 4: ""}
