"""Login, lock-out, sessions, password change and deactivation."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select, update

from pathology_hub.models import AuditEvent, User, UserSession


def _audit_actions(db) -> list[str]:
    db.expire_all()
    return [e.action for e in db.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_login_and_logout(client_for, db):
    c = client_for()
    resp = c.login("tech")
    assert resp.status_code == 302 and resp.headers["Location"] == "/"
    assert c.get("/api/v1/me").json["username"] == "tech"
    resp = c.post("/logout")
    assert resp.status_code == 302
    assert c.get("/api/v1/me").status_code == 401
    assert c.get("/api/v1/me").json["error"]["code"] == "login_required"
    assert {"login", "logout"} <= set(_audit_actions(db))


def test_wrong_password_is_audited_and_generic(client_for, db):
    c = client_for()
    resp = c.login("tech", "wrong-password")
    assert resp.status_code == 401
    assert "Wrong username or password" in resp.get_data(as_text=True)
    resp = c.login("nobody", "wrong-password")
    assert "Wrong username or password" in resp.get_data(as_text=True)
    events = db.scalars(select(AuditEvent).where(AuditEvent.action == "login.failed")).all()
    assert len(events) == 2
    assert all("wrong-password" not in e.details for e in events)


def test_lockout_after_repeated_failures(client_for, db, settings):
    c = client_for()
    for _ in range(settings.login_max_failures):
        assert c.login("tech", "bad-password!").status_code == 401
    # Even the right password is refused while locked.
    resp = c.login("tech")
    assert resp.status_code == 401
    assert "Too many failed logins" in resp.get_data(as_text=True)
    db.execute(update(User).where(User.username == "tech").values(locked_until=dt.datetime(2000, 1, 1)))
    db.commit()
    assert c.login("tech").status_code == 302


def test_new_session_identifier_at_login(client_for, db):
    c = client_for("tech")
    first = {s.id for s in db.scalars(select(UserSession))}
    c.post("/logout")
    c.login("tech")
    db.expire_all()
    second = {s.id for s in db.scalars(select(UserSession).where(UserSession.revoked_at.is_(None)))}
    assert second and not (second & first)


def test_deactivated_user_sessions_end_at_once(client_for, db):
    tech = client_for("tech")
    admin = client_for("admin")
    assert tech.get("/api/v1/me").status_code == 200
    user_id = db.scalar(select(User.id).where(User.username == "tech"))
    resp = admin.put(f"/api/v1/users/{user_id}/active", json={"active": False})
    assert resp.status_code == 200, resp.json
    assert tech.get("/api/v1/me").status_code == 401
    assert client_for().login("tech").status_code == 401


def test_idle_and_absolute_timeouts(client_for, db, settings):
    c = client_for("tech")
    assert c.get("/api/v1/me").status_code == 200
    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=settings.session_idle_minutes + 1)
    db.execute(update(UserSession).values(last_seen_at=long_ago))
    db.commit()
    assert c.get("/api/v1/me").status_code == 401

    c2 = client_for("tech")
    too_old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=settings.session_max_hours + 1)
    db.execute(update(UserSession).where(UserSession.revoked_at.is_(None)).values(created_at=too_old))
    db.commit()
    assert c2.get("/api/v1/me").status_code == 401


def test_password_change(client_for, db):
    c = client_for("clinician")
    other = client_for("clinician")
    resp = c.post("/account/password", data={"old_password": "wrong", "new_password": "a-new-password-1",
                                             "confirm_password": "a-new-password-1", "csrf_token": c.csrf})
    assert resp.status_code == 401
    resp = c.post("/account/password", data={"old_password": "demo-pass-2026", "new_password": "short",
                                             "confirm_password": "short", "csrf_token": c.csrf})
    assert resp.status_code == 422
    resp = c.post("/account/password", data={"old_password": "demo-pass-2026", "new_password": "a-new-password-1",
                                             "confirm_password": "a-new-password-1", "csrf_token": c.csrf})
    assert resp.status_code == 302
    assert c.get("/api/v1/me").status_code == 200        # this session continues
    assert other.get("/api/v1/me").status_code == 401    # other sessions end
    assert client_for().login("clinician").status_code == 401
    assert client_for().login("clinician", "a-new-password-1").status_code == 302
    stored = db.scalar(select(User.password_hash).where(User.username == "clinician"))
    assert stored.startswith("$argon2id$")


def test_open_redirect_is_refused(client_for):
    c = client_for()
    c.http.get("/login")
    from tests.conftest import CSRF_RE
    token = CSRF_RE.search(c.http.get("/login").get_data(as_text=True)).group(1)
    resp = c.http.post("/login?next=https://evil.example/x", data={"username": "tech", "password": "demo-pass-2026",
                                                                    "csrf_token": token})
    assert resp.headers["Location"] == "/"


def test_audit_log_is_append_only(client_for, db):
    client_for("tech")
    event = db.scalars(select(AuditEvent)).first()
    event.action = "tampered"
    import pytest
    with pytest.raises(RuntimeError, match="append-only"):
        db.flush()
    db.rollback()
    assert json.loads(db.scalars(select(AuditEvent)).first().details) is not None


def test_background_polling_does_not_keep_an_idle_session_alive(client_for, db, settings):
    c = client_for("tech")
    nearly_idle = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=settings.session_idle_minutes - 1)
    db.execute(update(UserSession).values(last_seen_at=nearly_idle))
    db.commit()
    assert c.get("/api/v1/notifications").status_code == 200   # the bell polls
    db.expire_all()
    seen = db.scalars(select(UserSession.last_seen_at)).one()
    assert abs((seen.replace(tzinfo=dt.timezone.utc) if seen.tzinfo is None else seen) - nearly_idle) < dt.timedelta(seconds=1)
    assert c.get("/api/v1/me").status_code == 200                # a real request does count
    db.expire_all()
    seen = db.scalars(select(UserSession.last_seen_at)).one()
    seen = seen.replace(tzinfo=dt.timezone.utc) if seen.tzinfo is None else seen
    assert seen > nearly_idle + dt.timedelta(seconds=30)
