"""Fault suite: parallel brute force. However many password guesses arrive at once, at most
``login_max_failures`` of them are ever checked per lock-out window (login form and signing
dialog share the counter), and parallel requests with the right password are never counted wrong.

Real parallel HTTP requests against a live threaded server (tests/conftest.py ``live_server``);
the test settings lock after 3 failures. The account's hash is re-made with a costlier Argon2 so
that the checks really overlap, as they would in production.
"""

from __future__ import annotations

import json

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from pathology_hub.models import AuditEvent, User
from pathology_hub.models.reports import ReportVersion
from tests.reports.conftest import DRAFT, PASSWORD, report_slide, save, scenario, start_report, users  # noqa: F401

from .helpers import all_at_once, logged_in, login_form

WRONG = "not-the-password-1234"
LIMIT = 3  # login_max_failures in the test settings


def _slow_hash(db, username: str) -> None:
    """~10x the test cost, so that dozens of checks are in flight together."""
    user = db.scalar(select(User).where(User.username == username))
    user.password_hash = PasswordHasher(time_cost=2, memory_cost=32768).hash(PASSWORD)
    db.commit()


def _reasons(db, action: str) -> list[str]:
    db.expire_all()
    return [json.loads(e.details).get("reason") for e in
            db.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq))]


def _user(db, username: str) -> User:
    db.expire_all()
    return db.scalar(select(User).where(User.username == username))


def _post_login(base: str, username: str, password: str):
    http, token = login_form(base)
    return lambda: http.post(f"{base}/login", data={"username": username, "password": password,
                                                    "csrf_token": token}, allow_redirects=False, timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("attempts", [24, 64])
def test_parallel_wrong_logins_check_at_most_the_limit(live_server, world, attempts):
    _slow_hash(world, "pathologist")
    answers = all_at_once([_post_login(live_server, "pathologist", WRONG) for _ in range(attempts)])
    assert all(a.status_code == 401 for a in answers), [a.status_code for a in answers]

    reasons = _reasons(world, "login.failed")
    checked = [r for r in reasons if r in ("bad_password", "locked_now")]
    assert len(checked) <= LIMIT, f"{len(checked)} guesses checked in one lock-out window (limit {LIMIT})"
    assert reasons.count("locked_now") == 1 and reasons.count("locked") == attempts - len(checked)
    assert _user(world, "pathologist").locked_until is not None
    # locked: the right password does not get in either
    assert _post_login(live_server, "pathologist", PASSWORD)().status_code == 401


@pytest.mark.slow
def test_parallel_right_logins_all_succeed_and_none_counts_as_wrong(live_server, world):
    _slow_hash(world, "pathologist")
    answers = all_at_once([_post_login(live_server, "pathologist", PASSWORD) for _ in range(24)])
    assert [a.status_code for a in answers] == [302] * 24
    assert _reasons(world, "login.failed") == []
    user = _user(world, "pathologist")
    assert user.failed_logins == 0 and user.locked_until is None


@pytest.mark.slow
def test_right_logins_among_parallel_wrong_ones_are_not_counted_wrong(live_server, world):
    _slow_hash(world, "pathologist")
    calls = [_post_login(live_server, "pathologist", PASSWORD if i % 2 else WRONG) for i in range(24)]
    answers = all_at_once(calls)
    right = [a for i, a in enumerate(answers) if i % 2]
    # each right one either logged in or met a lock set by the wrong ones; never "wrong password"
    assert all(a.status_code == 302 or "wrong" not in a.text.lower() for a in right)
    checked = [r for r in _reasons(world, "login.failed") if r in ("bad_password", "locked_now")]
    assert len(checked) <= 12


def _sign_call(base: str, http, csrf: str, report: dict, password: str):
    return lambda: http.post(f"{base}/api/v1/reports/{report['id']}/sign", headers={"X-CSRFToken": csrf},
                             json={"password": password, "revision": report["current"]["revision"]}, timeout=60)


@pytest.mark.slow
def test_parallel_wrong_signing_passwords_check_at_most_the_limit(live_server, client_for, scenario, world):
    p = client_for("pathologist")
    report = save(p, start_report(p, scenario.consultation_id), DRAFT)
    _slow_hash(world, "pathologist")
    sessions = [logged_in(live_server, "pathologist", PASSWORD) for _ in range(4)]
    calls = [_sign_call(live_server, *sessions[i % 4], report, WRONG) for i in range(24)]
    answers = all_at_once(calls)
    assert all(a.status_code == 401 for a in answers), [a.status_code for a in answers]
    codes = [a.json()["error"]["code"] for a in answers]
    reasons = _reasons(world, "report.sign_failed")
    checked = reasons.count("wrong password")
    assert checked <= LIMIT, f"{checked} signing passwords checked in one lock-out window (limit {LIMIT})"
    assert codes.count("invalid_password") == checked - 1 and codes.count("account_locked") == 24 - checked + 1
    assert _user(world, "pathologist").locked_until is not None
    world.expire_all()
    assert world.scalars(select(ReportVersion)).one().status == "draft"


@pytest.mark.slow
def test_parallel_right_signing_passwords_are_not_counted_wrong(live_server, client_for, scenario, world):
    p = client_for("pathologist")
    report = save(p, start_report(p, scenario.consultation_id), DRAFT)
    _slow_hash(world, "pathologist")
    sessions = [logged_in(live_server, "pathologist", PASSWORD) for _ in range(4)]
    answers = all_at_once([_sign_call(live_server, *sessions[i % 4], report, PASSWORD) for i in range(12)])
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(200) == 1 and 401 not in statuses, statuses  # one signs, the rest meet a 409
    assert "wrong password" not in _reasons(world, "report.sign_failed")
    user = _user(world, "pathologist")
    assert user.failed_logins == 0 and user.locked_until is None


def test_slots_of_killed_checks_lock_the_account_instead_of_freeing_guesses(client_for, world, monkeypatch):
    """A process killed mid-check never settles its slot: after the wait, that counts as failures."""
    from pathology_hub.domain import accounts
    monkeypatch.setattr(accounts, "RESERVATION_WAIT_SECONDS", 0.3)
    user = _user(world, "pathologist")
    user.failed_logins = LIMIT  # every slot reserved by checks that will never report
    world.commit()
    assert client_for().login("pathologist", PASSWORD).status_code == 401
    assert _reasons(world, "login.failed") == ["locked"]
    user = _user(world, "pathologist")
    assert user.locked_until is not None and user.failed_logins == 0
    user.locked_until = None  # the lock-out ends: a fresh run of slots
    world.commit()
    assert client_for().login("pathologist", PASSWORD).status_code == 302
