"""No dead ends before submission: withdrawing slides, naming what blocks a submission, editing
stain and block, and the duplicate warning (issue 15, items 3, 6 and 9)."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlalchemy import select

from pathology_hub.models import AuditEvent, Slide, SlideStatus, StainCategory
from tests.fixtures.uploads import tus_upload

ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}
EN = {"Accept-Language": "en"}


@pytest.fixture
def bogus(tmp_path):
    path = tmp_path / "scan-17.svs"
    path.write_text("this is not an image at all\n" * 50)
    return path


def _slides(db, case_id):
    db.expire_all()
    return db.scalars(select(Slide).where(Slide.case_id == case_id).order_by(Slide.id)).all()


def _draft(tech, case_id):
    resp = tech.post(f"/api/v1/cases/{case_id}/consultations", json={"question": "Carcinoma?"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.json["id"]


def test_a_rejected_slide_is_named_and_can_be_withdrawn(client_for, db, synthetic_slide, bogus, demo_case_id):
    tech = client_for("tech")
    assert tus_upload(tech, synthetic_slide, demo_case_id).status_code == 201
    assert tus_upload(tech, bogus, demo_case_id).status_code == 201
    good, bad = _slides(db, demo_case_id)
    assert (good.status, bad.status) == (SlideStatus.READY, SlideStatus.REJECTED)
    cid = _draft(tech, demo_case_id)

    # The refusal names the blocking slide, its file and the reason, in the user's language.
    en = tech.post(f"/api/v1/consultations/{cid}/submit", json={"acknowledge_warnings": True}, headers=EN)
    assert en.status_code == 422 and en.json["error"]["code"] == "slides_not_ready"
    assert "S2 (scan-17.svs)" in en.json["error"]["message"] and "not a slide or image" in en.json["error"]["message"]
    assert "S1" not in en.json["error"]["message"]
    assert en.json["error"]["details"]["slides"] == [{"slide_id": bad.id, "label": "S2", "filename": "scan-17.svs",
                                                      "status": "rejected", "reason_code": "not_an_image"}]
    zh = tech.post(f"/api/v1/consultations/{cid}/submit", json={"acknowledge_warnings": True}, headers=ZH)
    assert "S2（scan-17.svs）" in zh.json["error"]["message"] and "已拒收" in zh.json["error"]["message"]
    assert "Every slide" not in zh.json["error"]["message"]
    # The page form flashes the same message.
    page = tech.post(f"/consultations/{cid}/act", data={"transition": "submit", "acknowledge_warnings": "true"},
                     headers=ZH)
    assert "S2（scan-17.svs）" in tech.get(page.headers["Location"], headers=ZH).get_data(as_text=True)

    # The worklist counts both slides; the case lists a withdraw action for the rejected one.
    assert ">2</td>" in tech.get("/", headers=EN).get_data(as_text=True)
    listing = tech.get(f"/api/v1/cases/{demo_case_id}/slides").json["slides"]
    assert [s["actions"] for s in listing] == [{"edit": True, "withdraw": True}, {"edit": False, "withdraw": True}]

    # Withdrawal needs an explicit confirmation, and only the centre's technician may do it.
    refused = tech.post(f"/api/v1/slides/{bad.id}/withdraw", json={"reason": "bad file"})
    assert refused.status_code == 422 and refused.json["error"]["code"] == "confirmation_required"
    assert client_for("clinician").post(f"/api/v1/slides/{bad.id}/withdraw", json={"confirm": True}).status_code == 403
    assert client_for("tech2").post(f"/api/v1/slides/{bad.id}/withdraw", json={"confirm": True}).status_code == 404
    done = tech.post(f"/api/v1/slides/{bad.id}/withdraw", json={"confirm": True, "reason": "not a slide"})
    assert done.status_code == 200 and done.json["withdrawn"] is True

    # Gone from every listing and count, kept as a row with the withdrawn state.
    assert [s["id"] for s in tech.get(f"/api/v1/cases/{demo_case_id}/slides").json["slides"]] == [good.id]
    assert tech.get(f"/api/v1/slides/{bad.id}").status_code == 404
    assert ">1</td>" in tech.get("/", headers=EN).get_data(as_text=True)
    assert "scan-17.svs" not in tech.get(f"/cases/{demo_case_id}").get_data(as_text=True)
    db.expire_all()
    row = db.get(Slide, bad.id)
    assert row.status is SlideStatus.WITHDRAWN and row.deleted_at is not None and row.withdraw_reason == "not a slide"
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "slide.withdraw")).one()
    assert event.object_id == str(bad.id) and event.actor_name == "tech"
    # Withdrawing twice answers 404, and now the request can be submitted.
    assert tech.post(f"/api/v1/slides/{bad.id}/withdraw", json={"confirm": True}).status_code == 404
    ok = tech.post(f"/api/v1/consultations/{cid}/submit", json={"acknowledge_warnings": True})
    assert ok.status_code == 200 and ok.json["state"] == "triage"


def test_after_submission_slides_are_locked_but_rejected_ones_can_still_go(client_for, db, synthetic_slide, bogus,
                                                                         demo_case_id):
    tech = client_for("tech")
    assert tus_upload(tech, synthetic_slide, demo_case_id).status_code == 201
    good = _slides(db, demo_case_id)[0]
    cid = _draft(tech, demo_case_id)
    assert tech.post(f"/api/v1/consultations/{cid}/submit", json={"acknowledge_warnings": True}).status_code == 200
    locked = tech.post(f"/api/v1/slides/{good.id}/withdraw", json={"confirm": True})
    assert locked.status_code == 409 and locked.json["error"]["code"] == "slide_locked"
    assert tech.delete(f"/api/v1/slides/{good.id}").status_code == 409
    edit = tech.patch(f"/api/v1/slides/{good.id}", json={"stain_category": "ihc", "stain": "Ki-67"}, headers=ZH)
    assert edit.status_code == 409 and edit.json["error"]["code"] == "slide_locked"
    assert "不能再" in edit.json["error"]["message"]
    assert tech.get(f"/api/v1/cases/{demo_case_id}/slides").json["slides"][0]["actions"] == \
        {"edit": False, "withdraw": False}
    # A file that was rejected was never an image anyone could read: it can still be withdrawn.
    assert tus_upload(tech, bogus, demo_case_id).status_code == 201
    bad = _slides(db, demo_case_id)[1]
    assert bad.status is SlideStatus.REJECTED
    assert tech.post(f"/api/v1/slides/{bad.id}/withdraw", json={"confirm": True}).status_code == 200


def test_withdrawn_objects_follow_the_retention_period(app, client_for, db, synthetic_slide, demo_case_id):
    from pathology_hub import runtime
    from pathology_hub.domain import slide_facts
    tech = client_for("tech")
    assert tus_upload(tech, synthetic_slide, demo_case_id).status_code == 201
    assert tus_upload(tech, synthetic_slide, demo_case_id, filename="again.svs",
                      allow_duplicate=True).status_code == 201
    first, second = _slides(db, demo_case_id)
    store = runtime.store()
    assert first.original_id == second.original_id  # one stored original for both
    assert tech.delete(f"/api/v1/slides/{second.id}").status_code == 204  # DELETE withdraws too
    assert tech.post(f"/api/v1/slides/{first.id}/withdraw", json={"confirm": True}).status_code == 200
    db.expire_all()
    first = db.get(Slide, first.id)
    days = app.config["SETTINGS"].withdrawn_slide_retention_days
    assert days == 30
    assert abs((first.purge_after - first.deleted_at) - dt.timedelta(days=days)) < dt.timedelta(seconds=1)
    # Nothing is deleted before the retention period is over.
    assert slide_facts.purge_withdrawn(db, store) == []
    assert any(True for _ in store.list(f"pyramids/{first.uid}/"))
    assert store.exists(first.original.storage_key)
    # After it, pyramids, derived images and the original (no live slide needs it) go; the rows stay.
    later = first.purge_after + dt.timedelta(minutes=1)
    assert slide_facts.purge_withdrawn(db, store, now=later) == sorted([first.id, second.id])
    assert not any(True for _ in store.list(f"pyramids/{first.uid}/"))
    assert not any(True for _ in store.list(f"slides/{first.uid}/"))
    assert not store.exists(first.original.storage_key)
    assert slide_facts.purge_withdrawn(db, store, now=later) == []  # idempotent
    assert {e.action for e in db.scalars(select(AuditEvent))} >= {"slide.withdraw", "slide.purge"}
    # The scrub knows the original is gone on purpose.
    result = app.test_cli_runner().invoke(args=["storage", "verify", "--prefix", "originals/"])
    assert result.exit_code == 0, result.output


def test_original_stays_while_a_live_slide_of_another_case_uses_it(app, client_for, world, db, synthetic_slide,
                                                                  demo_case_id):
    from pathology_hub import runtime
    from pathology_hub.domain import slide_facts
    tech = client_for("tech")
    other = tech.post("/api/v1/cases", json={"case_number": "C-RET-2", "patient_pseudo_id": "P-2"}).json["id"]
    assert tus_upload(tech, synthetic_slide, demo_case_id).status_code == 201
    assert tus_upload(tech, synthetic_slide, other).status_code == 201
    first = _slides(db, demo_case_id)[0]
    assert tech.post(f"/api/v1/slides/{first.id}/withdraw", json={"confirm": True}).status_code == 200
    db.expire_all()
    first = db.get(Slide, first.id)
    assert slide_facts.purge_withdrawn(db, runtime.store(), now=first.purge_after) == [first.id]
    assert runtime.store().exists(first.original.storage_key)  # the other case's slide still needs it


def test_stain_and_block_are_edited_validated_and_audited(client_for, db, synthetic_slide, demo_case_id):
    tech = client_for("tech")
    assert tus_upload(tech, synthetic_slide, demo_case_id).status_code == 201
    slide = _slides(db, demo_case_id)[0]
    assert slide.stain == "H&E" and tech.get(f"/api/v1/slides/{slide.id}").json["stain_category"] == "he"

    ok = tech.patch(f"/api/v1/slides/{slide.id}", json={"stain_category": "ihc", "stain": " Ki-67 ",
                                                         "block_label": "A1"}, headers=ZH)
    assert ok.status_code == 200, ok.get_data(as_text=True)
    assert (ok.json["stain_category"], ok.json["stain_name"], ok.json["block_label"]) == ("ihc", "Ki-67", "A1")
    assert ok.json["stain_display"] == "免疫组化 Ki-67"
    assert ok.json["changes"]["stain_category"] == {"from": "he", "to": "ihc"}
    en = tech.get(f"/api/v1/slides/{slide.id}", headers=EN).json
    assert en["stain_display"] == "IHC Ki-67" and en["block_label"] == "A1"
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "slide.update")).one()
    assert "Ki-67" in event.details and "A1" in event.details

    bad = {
        (("stain_category", "ihc"), ("stain", "")): "missing_field",
        (("stain_category", "silver"),): "invalid_stain_category",
        (("stain_category", "special"), ("stain", "PAS<script>")): "invalid_characters",
        (("stain_category", "special"), ("stain", "x" * 65)): "field_too_long",
        (("block_label", "A1\x00"),): "invalid_characters",
        (("block_label", "B" * 33),): "field_too_long",
        (("stain_category", "ihc"), ("stain", "H&E")): "invalid_stain_name",
    }
    for fields, code in bad.items():
        resp = tech.patch(f"/api/v1/slides/{slide.id}", json=dict(fields), headers=ZH)
        assert resp.status_code == 422 and resp.json["error"]["code"] == code, (fields, resp.json)
        assert not resp.json["error"]["message"].isascii(), resp.json  # translated
    # Chinese names are letters too; fluorescence needs no marker name; H&E clears the name.
    assert tech.patch(f"/api/v1/slides/{slide.id}", json={"stain_category": "special",
                                                          "stain": "Masson 三色"}).status_code == 200
    assert tech.patch(f"/api/v1/slides/{slide.id}", json={"stain_category": "fluorescence",
                                                          "stain": ""}).json["stain_display"] == "Fluorescence"
    back = tech.patch(f"/api/v1/slides/{slide.id}", json={"stain_category": "he"}, headers=EN).json
    assert (back["stain"], back["stain_display"], back["block_label"]) == ("H&E", "H&E", "A1")
    assert client_for("clinician").patch(f"/api/v1/slides/{slide.id}", json={"block_label": "Z"}).status_code == 403
    assert client_for("tech2").patch(f"/api/v1/slides/{slide.id}", json={"block_label": "Z"}).status_code == 404
    db.expire_all()
    assert db.get(Slide, slide.id).stain_category is StainCategory.HE


def test_case_page_forms_edit_and_withdraw(client_for, db, synthetic_slide, demo_case_id):
    tech = client_for("tech")
    assert tus_upload(tech, synthetic_slide, demo_case_id).status_code == 201
    slide = _slides(db, demo_case_id)[0]
    base = f"/cases/{demo_case_id}/slides/{slide.id}"
    resp = tech.post(f"{base}/facts", data={"stain_category": "ihc", "stain": "CD20", "block_label": "B2",
                                            "csrf_token": tech.csrf}, headers=ZH)
    assert resp.status_code == 302
    page = tech.get(f"/cases/{demo_case_id}", headers=ZH).get_data(as_text=True)
    assert "免疫组化 CD20" in page and "B2" in page and "已保存" in page
    resp = tech.post(f"{base}/facts", data={"stain_category": "ihc", "stain": "", "csrf_token": tech.csrf},
                     headers=ZH)
    assert "必须填写" in tech.get(resp.headers["Location"], headers=ZH).get_data(as_text=True)
    # Withdrawal from the page needs the dialog's confirmation field.
    resp = tech.post(f"{base}/withdraw", data={"csrf_token": tech.csrf}, headers=EN)
    assert "Please confirm the withdrawal." in tech.get(resp.headers["Location"], headers=EN).get_data(as_text=True)
    resp = tech.post(f"{base}/withdraw", data={"confirm": "1", "reason": "wrong block", "csrf_token": tech.csrf},
                     headers=EN)
    assert "Slide S1 was withdrawn" in tech.get(resp.headers["Location"], headers=EN).get_data(as_text=True)
    assert client_for("tech2").post(f"{base}/withdraw", data={"confirm": "1"}).status_code in (400, 404)


def test_duplicate_upload_warns_with_a_link_and_needs_a_deliberate_choice(client_for, db, synthetic_slide,
                                                                          demo_case_id):
    tech = client_for("tech")
    digest = hashlib.sha256(synthetic_slide.read_bytes()).hexdigest()
    url = f"/api/v1/cases/{demo_case_id}/slides?sha256={digest}"
    assert tech.get(url).json["slides"] == []
    assert tus_upload(tech, synthetic_slide, demo_case_id).status_code == 201
    first = _slides(db, demo_case_id)[0]
    found = tech.get(url).json["slides"]
    assert [s["id"] for s in found] == [first.id] and found[0]["viewer_url"].endswith(f"slide={first.id}")
    assert tech.get(f"/api/v1/cases/{demo_case_id}/slides?sha256=nothex").json["error"]["code"] == "invalid_sha256"
    assert client_for("tech2").get(url).status_code == 404

    # Refused at tus creation, before any byte is stored, with a stable code naming the slide.
    again = tus_upload(tech, synthetic_slide, demo_case_id, filename="again.svs")
    assert again.status_code == 409 and again.json["error"]["code"] == "duplicate_slide"
    assert "S1" in again.json["error"]["message"] and str(first.id) in again.json["error"]["message"]
    assert len(_slides(db, demo_case_id)) == 1
    # Attaching it again is a deliberate, audited choice; the copy says what it duplicates.
    assert tus_upload(tech, synthetic_slide, demo_case_id, filename="again.svs",
                      allow_duplicate=True).status_code == 201
    second = _slides(db, demo_case_id)[1]
    info = tech.get(f"/api/v1/slides/{second.id}").json
    assert info["duplicate_of"] == [{"id": first.id, "label": "S1"}]
    created = [e for e in db.scalars(select(AuditEvent).where(AuditEvent.action == "upload.create"))]
    assert f'"duplicate_of": [{first.id}]' in created[-1].details
    # A withdrawn slide is not a duplicate any more.
    assert tech.post(f"/api/v1/slides/{first.id}/withdraw", json={"confirm": True}).status_code == 200
    assert tech.post(f"/api/v1/slides/{second.id}/withdraw", json={"confirm": True}).status_code == 200
    assert tech.get(url).json["slides"] == []
