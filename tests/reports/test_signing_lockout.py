"""Wrong signing passwords count toward the login lock-out; a locked account cannot sign.

The test settings lock an account after 3 failures (``login_max_failures=3`` in tests/conftest.py).
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select

from pathology_hub.domain.audit import verify_chain
from pathology_hub.models import AuditEvent, User
from pathology_hub.models.reports import ReportVersion

from .conftest import DRAFT, PASSWORD, save, start_report

WRONG = "not-my-password-9431"


def _sign(client, report: dict, password: str):
    return client.post(f"/api/v1/reports/{report['id']}/sign",
                       json={"password": password, "revision": report["current"]["revision"]})


def _pathologist(db) -> User:
    db.expire_all()
    return db.scalar(select(User).where(User.username == "pathologist"))


def _events(db, action: str) -> list[AuditEvent]:
    db.expire_all()
    return db.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)).all()


def test_wrong_signing_passwords_lock_the_account_like_failed_logins(client_for, scenario, db):
    p = client_for("pathologist")
    report = save(p, start_report(p, scenario.consultation_id), DRAFT)

    first = _sign(p, report, WRONG)
    assert first.status_code == 401 and first.json["error"]["code"] == "invalid_password"
    assert _pathologist(db).failed_logins == 1
    second = _sign(p, report, WRONG)
    assert second.json["error"]["code"] == "invalid_password" and _pathologist(db).failed_logins == 2

    # the third failure reaches login_max_failures: the account is locked (same code as at login)
    third = _sign(p, report, WRONG)
    assert third.status_code == 401 and third.json["error"]["code"] == "account_locked"
    assert third.json["error"]["details"]["retry_after_minutes"] >= 1
    assert int(third.headers["Retry-After"]) >= 60
    user = _pathologist(db)
    assert user.locked_until is not None and user.failed_logins == 0

    # locked: even the right password does not sign
    locked = _sign(p, report, PASSWORD)
    assert locked.status_code == 401 and locked.json["error"]["code"] == "account_locked"
    assert db.scalars(select(ReportVersion)).one().status == "draft"
    # ...and the login is locked too
    fresh = client_for()
    assert fresh.login("pathologist").status_code == 401
    assert _events(db, "login.failed")[-1].details and \
        json.loads(_events(db, "login.failed")[-1].details)["reason"] == "locked"

    reasons = [json.loads(e.details) for e in _events(db, "report.sign_failed")]
    assert [r["reason"] for r in reasons] == ["wrong password"] * 3 + ["account_locked"]
    assert [r.get("locked_now") for r in reasons[:3]] == [False, False, True]
    every = _events(db, "report.sign_failed") + _events(db, "login.failed")
    assert all(WRONG not in (e.details or "") and PASSWORD not in (e.details or "") for e in every)
    assert verify_chain(db).intact

    # when the lock ends, the right password signs and the counter starts again from zero
    user = _pathologist(db)
    user.locked_until = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    db.commit()
    signed = _sign(p, report, PASSWORD)
    assert signed.status_code == 200, signed.get_data(as_text=True)[:300]
    assert signed.json["current"]["status"] == "signed"
    assert _pathologist(db).failed_logins == 0


def test_failed_logins_and_failed_signing_share_one_counter(client_for, scenario, db):
    p = client_for("pathologist")
    report = save(p, start_report(p, scenario.consultation_id), DRAFT)
    assert client_for().login("pathologist", WRONG).status_code == 401
    assert client_for().login("pathologist", WRONG).status_code == 401
    assert _pathologist(db).failed_logins == 2
    resp = _sign(p, report, WRONG)  # the third failure overall
    assert resp.json["error"]["code"] == "account_locked"
    assert _pathologist(db).locked_until is not None

