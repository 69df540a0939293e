"""The frozen-section lane: a frozen request pages the on-call pathologists (alarm, e-mail, SMS
webhook), falls back to every pathologist when nobody is on call, is acknowledged, shows a
minutes clock, and is reported separately in minutes on the turnaround dashboard."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from sqlalchemy import select

from pathology_hub.domain import consultations as svc
from pathology_hub.domain import frozen, jobs
from pathology_hub.domain import turnaround as tat
from pathology_hub.domain.accounts import create_user
from pathology_hub.domain.errors import ValidationFailed
from pathology_hub.models import Job, JobState, Priority
from pathology_hub.models.consultations import ConsultationState as S, Notification
from pathology_hub.models.frozen import FrozenPage
from tests.consultations.conftest import signed_version_row, wait_for_mail

UTC = dt.timezone.utc


class Gateway:
    """A real HTTP server standing in for the SMS gateway: keeps each JSON body; can be told to fail."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.fail_next = 0
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server protocol
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if gateway.fail_next > 0:
                    gateway.fail_next -= 1
                    self.send_response(503)
                else:
                    gateway.bodies.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args):  # quiet
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/sms"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sms_gateway(settings):
    gateway = Gateway()
    settings.sms_webhook_url = gateway.url
    yield gateway
    settings.sms_webhook_url = ""
    gateway.close()


@pytest.fixture
def second_pathologist(world, insts):
    u = create_user(world, username="li.frozen", full_name="李冰冻 Li (frozen)", password="demo-pass-2026",
                    role="pathologist", institution=insts["DIST1"], email="li.frozen@example.org")
    world.commit()
    return u


def _frozen_request(world, make_consultation):
    c = make_consultation(S.DRAFT)
    c.priority = Priority.FROZEN
    world.commit()
    return c


def test_frozen_request_pages_the_on_call_pathologist(world, users, make_consultation, second_pathologist,
                                                      smtp_sink, sms_gateway):
    now = dt.datetime.now(UTC)
    admin = users["admin"]  # admin of DIST1, the receiving institution
    frozen.add_shift(world, admin, {"user_id": second_pathologist.id, "starts_at": (now - dt.timedelta(hours=1)).isoformat(),
                                    "ends_at": (now + dt.timedelta(hours=7)).isoformat(), "phone": "+86 138 0000 0000"})
    world.commit()
    c = _frozen_request(world, make_consultation)
    svc.submit(world, users["tech"], c, skip_slide_check_for_demo_seed=True)
    world.commit()

    pages = world.scalars(select(FrozenPage).where(FrozenPage.consultation_id == c.id)).all()
    assert [(p.user_id, p.fallback) for p in pages] == [(second_pathologist.id, False)]
    # the in-app alarm is up for the on-call pathologist only
    assert [p.id for p in frozen.alarms(world, second_pathologist)] == [pages[0].id]
    assert frozen.alarms(world, users["pathologist"]) == []
    # e-mail through the ordinary notification path
    mails = wait_for_mail(smtp_sink, 1)
    assert any(rcpt == ["li.frozen@example.org"] and "DEMO-2026-001" in text for rcpt, text in mails), mails
    # SMS webhook: a real POST with the roster's number and the case
    world.expire_all()
    assert [b["to"] for b in sms_gateway.bodies] == ["+86 138 0000 0000"]
    assert sms_gateway.bodies[0]["case"] == "DEMO-2026-001" and "DEMO-2026-001" in sms_gateway.bodies[0]["text"]
    assert world.get(FrozenPage, pages[0].id).sms_status == "sent"
    # the on-call pathologist is not told twice (no separate triage notification)
    kinds = [n.kind for n in world.scalars(select(Notification).where(Notification.user_id == second_pathologist.id))]
    assert kinds == ["frozen_page"]


def test_nobody_on_call_pages_every_pathologist_and_says_so(world, users, make_consultation, second_pathologist):
    c = _frozen_request(world, make_consultation)
    svc.submit(world, users["tech"], c, skip_slide_check_for_demo_seed=True)
    world.commit()
    pages = frozen.pages_of(world, c)
    assert sorted(p.user_id for p in pages) == sorted([users["pathologist"].id, second_pathologist.id])
    assert all(p.fallback for p in pages)
    # no webhook configured: SMS is reported as not configured, never as sent
    assert {p.sms_status for p in pages} == {"not_configured"}
    assert world.scalars(select(Job).where(Job.kind == frozen.SMS_JOB)).all() == []


def test_a_failing_gateway_is_retried_and_the_page_kept(world, users, make_consultation, sms_gateway):
    sms_gateway.fail_next = 1
    c = _frozen_request(world, make_consultation)
    svc.submit(world, users["tech"], c, skip_slide_check_for_demo_seed=True)
    world.commit()
    (page,) = frozen.pages_of(world, c)
    job = world.scalar(select(Job).where(Job.kind == frozen.SMS_JOB))
    world.expire_all()
    assert job.state is JobState.QUEUED and job.attempts == 1 and "503" in (job.error or "")
    assert world.get(FrozenPage, page.id).sms_status == "pending" and sms_gateway.bodies == []
    from pathology_hub.db import SessionLocal
    assert jobs.run(SessionLocal.session_factory, job.id) == "done"   # the retry the queue would run
    world.expire_all()
    assert world.get(FrozenPage, page.id).sms_status == "sent" and len(sms_gateway.bodies) == 1


def test_acknowledgement_stops_the_alarm_for_that_user_only(world, users, make_consultation, second_pathologist):
    c = _frozen_request(world, make_consultation)
    svc.submit(world, users["tech"], c, skip_slide_check_for_demo_seed=True)
    world.commit()
    mine = frozen.alarms(world, users["pathologist"])
    assert len(mine) == 1
    from pathology_hub.domain.errors import NotFound
    with pytest.raises(NotFound):  # nobody acknowledges someone else's page
        frozen.acknowledge(world, second_pathologist, mine[0].id)
    frozen.acknowledge(world, users["pathologist"], mine[0].id)
    world.commit()
    assert frozen.alarms(world, users["pathologist"]) == []
    assert len(frozen.alarms(world, second_pathologist)) == 1


def test_roster_validation(world, users, second_pathologist, insts):
    admin = users["admin"]
    with pytest.raises(ValidationFailed) as err:
        frozen.add_shift(world, admin, {"user_id": second_pathologist.id, "starts_at": "2026-12-04T20:00",
                                        "ends_at": "2026-12-04T08:00"})
    assert err.value.code == "on_call_end_before_start"
    with pytest.raises(ValidationFailed) as err:
        frozen.add_shift(world, admin, {"user_id": users["expert"].id, "starts_at": "2026-12-04T08:00",
                                        "ends_at": "2026-12-04T20:00"})
    assert err.value.code == "on_call_user_invalid"  # another institution's pathologist
    with pytest.raises(ValidationFailed) as err:
        frozen.add_shift(world, admin, {"user_id": second_pathologist.id, "starts_at": "yesterday",
                                        "ends_at": "2026-12-04T20:00"})
    assert err.value.code == "on_call_time_invalid"
    # a datetime-local value is the institution's wall clock (Asia/Shanghai = UTC+8)
    shift = frozen.add_shift(world, admin, {"user_id": second_pathologist.id, "starts_at": "2026-12-04T08:00",
                                            "ends_at": "2026-12-04T20:00"})
    assert shift.starts_at == dt.datetime(2026, 12, 4, 0, 0, tzinfo=UTC)


def test_minutes_clock_turns_amber_then_red_and_stops_at_signing(world, users, make_consultation, monkeypatch):
    monkeypatch.setenv("FROZEN_TARGET_MINUTES", "20")
    t0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    c = _frozen_request(world, make_consultation)
    svc.submit(world, users["tech"], c, now=t0, skip_slide_check_for_demo_seed=True)
    world.commit()
    at = lambda m: t0 + dt.timedelta(minutes=m)  # noqa: E731
    assert (frozen.clock(c, at(5)).minutes, frozen.clock(c, at(5)).level) == (5, "ok")
    assert frozen.clock(c, at(16)).level == "amber"
    assert frozen.clock(c, at(21)).level == "red"
    svc.assign(world, users["admin"], c, users["pathologist"].id, now=at(1))
    svc.accept(world, users["pathologist"], c, now=at(2))
    svc.mark_reported(world, users["pathologist"], c, now=at(12))
    world.commit()
    stopped = frozen.clock(c, at(90))
    assert stopped.stopped and int(stopped.minutes) == 12 and stopped.level == "ok"
    assert frozen.clock(make_consultation(S.DRAFT), at(5)) is None  # not frozen, not submitted


def test_dashboard_reports_frozen_sections_in_minutes(world, users, make_consultation, monkeypatch):
    monkeypatch.setenv("FROZEN_TARGET_MINUTES", "20")
    t0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    for minutes in (10, 15, 30):  # two within 20 minutes, one past it
        c = _frozen_request(world, make_consultation)
        svc.submit(world, users["tech"], c, now=t0, skip_slide_check_for_demo_seed=True)
        svc.assign(world, users["admin"], c, users["pathologist"].id, now=t0)
        svc.accept(world, users["pathologist"], c, now=t0)
        svc.mark_reported(world, users["pathologist"], c, now=t0 + dt.timedelta(minutes=minutes))
        signed_version_row(world, c, users["pathologist"], "Benign.", at=t0 + dt.timedelta(minutes=minutes))
    open_one = _frozen_request(world, make_consultation)  # still open: not counted
    svc.submit(world, users["tech"], open_one, now=t0, skip_slide_check_for_demo_seed=True)
    world.commit()
    figures = tat.frozen_figures(world)
    assert figures["count"] == 3 and figures["target_minutes"] == 20
    assert figures["median_minutes"] == 15.0 and figures["p90_minutes"] == 27.0
    assert figures["within_target_percent"] == pytest.approx(66.7, abs=0.05)
    # and they are not folded into the hourly stage table
    assert tat.dashboard(world) == {"institution": [], "pathologist": []}


@pytest.mark.parametrize("language, expected", [("zh", "冰冻"), ("en", "Frozen section")])
def test_frozen_report_starts_from_the_short_template_in_the_report_language(world, users, make_consultation,
                                                                            language, expected):
    from pathology_hub.domain.reports import drafts
    c = _frozen_request(world, make_consultation)
    c.requesting_institution.report_language = language
    svc.submit(world, users["tech"], c, skip_slide_check_for_demo_seed=True)
    svc.assign(world, users["admin"], c, users["pathologist"].id)
    svc.accept(world, users["pathologist"], c)
    report = drafts.create(world, users["pathologist"], c)
    v = report.versions[0]
    assert expected in v.diagnosis and v.gross_description and v.comment
    routine = make_consultation(S.DRAFT)
    svc.submit(world, users["tech"], routine, skip_slide_check_for_demo_seed=True)
    svc.assign(world, users["admin"], routine, users["pathologist"].id)
    svc.accept(world, users["pathologist"], routine)
    assert drafts.create(world, users["pathologist"], routine).versions[0].diagnosis == ""


def test_case_page_shows_the_clock_and_the_api_acknowledges(world, users, make_consultation, client_for, demo_case):
    c = _frozen_request(world, make_consultation)
    svc.submit(world, users["tech"], c, skip_slide_check_for_demo_seed=True)
    world.commit()
    page = client_for("tech").get(f"/cases/{demo_case.id}").get_data(as_text=True)
    assert 'data-testid="frozen-clock"' in page
    assert 'data-testid="frozen-alarm-item"' not in page  # the technician is not paged
    path = client_for("pathologist")
    alarms = path.get("/api/v1/frozen/alarms").get_json()["alarms"]
    assert [a["case"] for a in alarms] == ["DEMO-2026-001"] and alarms[0]["fallback"] is True
    assert alarms[0]["sms_status"] == "not_configured" and alarms[0]["clock"]["target_minutes"] == 20
    assert client_for("tech").post(f"/api/v1/frozen/pages/{alarms[0]['id']}/ack").status_code == 404
    assert path.post(f"/api/v1/frozen/pages/{alarms[0]['id']}/ack").status_code == 200
    assert path.get("/api/v1/frozen/alarms").get_json()["alarms"] == []


def test_a_cancelled_request_stops_ringing_but_keeps_its_pages(world, users, make_consultation):
    c = _frozen_request(world, make_consultation)
    svc.submit(world, users["tech"], c, skip_slide_check_for_demo_seed=True)
    world.commit()
    assert len(frozen.alarms(world, users["pathologist"])) == 1
    svc.cancel(world, users["tech"], c, "Operation abandoned.")
    world.commit()
    assert frozen.alarms(world, users["pathologist"]) == []      # nobody runs for a cancelled request
    assert [p.acknowledged_at for p in frozen.pages_of(world, c)] == [None]   # the record stays as it was


def test_escalating_a_frozen_request_pages_the_next_tiers_on_call(world, users, make_consultation):
    c = _frozen_request(world, make_consultation)
    svc.submit(world, users["tech"], c, skip_slide_check_for_demo_seed=True)
    svc.assign(world, users["admin"], c, users["pathologist"].id)
    svc.accept(world, users["pathologist"], c)
    world.commit()
    assert frozen.alarms(world, users["pathologist"])[0].consultation_id == c.id
    child = svc.escalate(world, users["pathologist"], c, "Spindle cells; expert opinion needed now.")
    world.commit()
    assert child.priority is Priority.FROZEN
    paged = frozen.pages_of(world, child)
    assert [p.user_id for p in paged] == [users["expert"].id]   # nobody on call at UNIV: every pathologist there
    assert [a.consultation_id for a in frozen.alarms(world, users["expert"])] == [child.id]
    # the district's alarm is quiet: the request has gone up a tier
    assert frozen.alarms(world, users["pathologist"]) == []
    kinds = [n.kind for n in world.scalars(select(Notification).where(Notification.user_id == users["expert"].id))]
    assert kinds == ["frozen_page"]  # paged once, not also told of an ordinary escalation


@pytest.mark.parametrize("language, expected", [("zh-CN", "分钟"), ("en", "minutes")])
def test_request_page_counts_a_frozen_turnaround_in_minutes(world, users, make_consultation, client_for,
                                                             language, expected):
    c = _frozen_request(world, make_consultation)
    svc.submit(world, users["tech"], c, skip_slide_check_for_demo_seed=True)
    world.commit()
    page = client_for("tech").get(f"/consultations/{c.id}", headers={"Accept-Language": language}).get_data(as_text=True)
    line = page.split('data-testid="tat-minutes">', 1)[1].split("<", 1)[0]
    assert expected in line and "20" in line, line
