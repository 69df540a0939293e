"""In-app notifications, the bell API, e-mail through SMTP (aiosmtpd sink) and gateway hooks."""

from __future__ import annotations

from sqlalchemy import select

from pathology_hub.domain import notifications
from pathology_hub.models import Slide, SlideStatus
from pathology_hub.models.consultations import ConsultationState as S, Notification
from tests.consultations.conftest import wait_for_mail as _wait_for


def test_submit_notifies_triage_and_emails(client_for, db, users, demo_case, make_consultation, smtp_sink):
    users["pathologist"].email = "zhang@dist1.example"
    db.add(Slide(uid="c" * 32, case_id=demo_case.id, status=SlideStatus.READY, label="A1"))
    db.commit()
    seen_by_hook = []
    notifications.register_hook(lambda n, user, text: seen_by_hook.append((n.kind, user.username)))
    try:
        c = make_consultation(S.DRAFT)
        assert client_for("tech").post(f"/api/v1/consultations/{c.id}/submit", json={}).status_code == 200
        msgs = _wait_for(smtp_sink, 1)
    finally:
        notifications.HOOKS.clear()
    db.expire_all()
    rows = db.scalars(select(Notification).where(Notification.consultation_id == c.id)).all()
    assert {(n.kind, n.user_id) for n in rows} == {("triage_new", users["pathologist"].id),
                                                   ("triage_new", users["admin"].id)}
    assert all(n.delivered_at is not None for n in rows)
    assert len(msgs) == 1 and msgs[0][0] == ["zhang@dist1.example"]
    assert "DEMO-2026-001" in msgs[0][1] and f"/consultations/{c.id}" in msgs[0][1]
    assert "新的会诊申请待分诊" in msgs[0][1]
    assert sorted(seen_by_hook) == [("triage_new", "admin"), ("triage_new", "pathologist")]

    # The bell: unread count, localised text, mark read.
    path_c = client_for("pathologist")
    data = path_c.get("/api/v1/notifications").json
    assert data["unread"] == 1 and "DEMO-2026-001" in data["notifications"][0]["text"]
    assert 'data-testid="notif-count">1<' in path_c.get("/").get_data(as_text=True)
    assert path_c.post("/api/v1/notifications/read", json={"ids": "x"}).status_code == 422
    assert path_c.post("/api/v1/notifications/read", json={"all": True}).json == {"marked": 1, "unread": 0}
    # Another user's notification ids cannot be marked.
    admin_note = next(n.id for n in rows if n.user_id == users["admin"].id)
    assert path_c.post("/api/v1/notifications/read", json={"ids": [admin_note]}).json["marked"] == 0


def test_each_event_notifies_the_right_people(world, users, make_consultation):
    from pathology_hub.domain import consultations as svc
    db = world

    def kinds_for(name):
        db.flush()
        return [n.kind for n in db.scalars(select(Notification).where(Notification.user_id == users[name].id)
                                           .order_by(Notification.id))]

    c = make_consultation(S.TRIAGE)
    svc.assign(db, users["admin"], c, users["pathologist"].id)
    assert kinds_for("pathologist") == ["assigned"]
    svc.accept(db, users["pathologist"], c)
    svc.request_info(db, users["pathologist"], c, "more")
    assert kinds_for("tech") == ["info_requested"] and kinds_for("clinician") == ["info_requested"]
    svc.answer_info(db, users["tech"], c, "done")
    assert kinds_for("pathologist")[-1] == "info_answered"
    child = svc.escalate(db, users["pathologist"], c, "prelim")
    assert kinds_for("expert") == ["escalated"]
    svc.assign(db, users["expert"], child, users["expert"].id)
    svc.accept(db, users["expert"], child)
    svc.mark_reported(db, users["expert"], child)
    assert kinds_for("pathologist")[-1] == "reported"
    svc.return_result(db, users["expert"], child, "advice")
    assert kinds_for("clinician")[-1] == "returned" and kinds_for("tech")[-1] == "returned"
    db.commit()


def test_notifications_are_rendered_from_the_catalogue_in_the_readers_language(users):
    """The domain stores a kind and parameters; the words come from messages.po at display/send time."""
    import json

    note = Notification(kind="report_amended", user_id=users["clinician"].id,
                        params=json.dumps({"case": "C-7", "version": 2, "previous_version": 1,
                                           "reason": "IHC result", "diagnosis": "B", "previous_diagnosis": "A",
                                           "diagnosis_changed": True}))
    assert notifications.text_of(note, "en") == "AMENDED RESULT: case C-7, version 2 replaces version 1"
    zh = notifications.text_of(note, "zh_CN", with_reason=True)
    assert zh.startswith("更正报告：病例 C-7 第 2 版已取代第 1 版") and zh.endswith("。原因：IHC result")
    body_en = notifications.body_of(note, "https://hub/c/1/result", "en")
    assert "Superseded diagnosis (version 1): A" in body_en and "confirm you have read it" in body_en
    body_zh = notifications.body_of(note, "https://hub/c/1/result", "zh_CN")
    assert "已被取代的诊断（第 1 版）: A" in body_zh and "Superseded" not in body_zh
    users["clinician"].locale = "en"
    assert notifications.recipient_locale(users["clinician"]) == "en"
    users["clinician"].locale = None
    assert notifications.recipient_locale(users["clinician"]) == "zh_CN"
