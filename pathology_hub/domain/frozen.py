"""The frozen-section lane: on-call roster, paging, the minutes clock and the short report template.

An intraoperative frozen section must be answered while the patient is on the table, so a
frozen request does not wait in triage like other requests: on submission it *pages* the
on-call pathologists of the receiving institution (everyone on its roster now, or every
pathologist there when nobody is on call, and the page says so).  A page is three things:

* an in-app alarm (a :class:`FrozenPage` row) shown with a tone on every page of the paged
  user until they acknowledge it;
* an e-mail, through the ordinary notification path (kind ``frozen_page``);
* an SMS through a configurable HTTP webhook (``SMS_WEBHOOK_URL``, JSON POST), sent by a
  durable ``frozen_sms`` job so a failing gateway is retried and the page is never lost.
  Without a URL the page says SMS is *not configured*: it is never reported as sent.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import urllib.error
import urllib.request
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from .. import runtime
from ..catalogue import N_, render
from ..models import Institution, Job, Role, User, as_utc, utcnow
from ..models.consultations import Consultation, ConsultationState
from ..models.frozen import FrozenPage, OnCallShift
from . import audit, jobs, notifications, timezones
from .errors import Forbidden, NotFound, ValidationFailed

log = logging.getLogger("pathology_hub.frozen")

SMS_JOB = "frozen_sms"
#: Attempts of one SMS before the page is marked failed (back-off 2, 4, 8 … 60 s between them).
SMS_MAX_ATTEMPTS = 12
SMS_TEXT = N_("FROZEN SECTION: case %(case)s needs you now. %(link)s")
#: The clock turns amber at this share of the target.
AMBER_FRACTION = 0.75


def target_minutes() -> int:
    """Minutes from submission to the signed report (``FROZEN_TARGET_MINUTES``, default 20)."""
    try:
        value = int(os.environ.get("FROZEN_TARGET_MINUTES", "20"))
    except ValueError:
        raise RuntimeError("FROZEN_TARGET_MINUTES must be a whole number of minutes") from None
    if value <= 0:
        raise RuntimeError("FROZEN_TARGET_MINUTES must be positive")
    return value


def is_frozen(c: Consultation) -> bool:
    return c.priority is not None and c.priority.value == "frozen"


# ---------------------------------------------------------------- the roster
def _parse_time(value: Any, field: str, zone_name: str | None) -> dt.datetime:
    """An ISO date-time; without an offset (a datetime-local field) it is the institution's wall clock."""
    if isinstance(value, dt.datetime):
        return as_utc(value)
    text = str(value or "").strip()
    if not text:
        raise ValidationFailed("Enter when the shift starts and ends.", code="on_call_time_missing",
                               details={"field": field})
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValidationFailed("The shift time is not a valid date and time.", code="on_call_time_invalid",
                               details={"field": field}) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezones.zone(zone_name))
    return parsed.astimezone(dt.timezone.utc)


def _require_admin(user: User) -> None:
    if user.role is not Role.ADMIN:
        raise Forbidden("You do not have permission to do this.", code="forbidden")


def roster(session: Session, admin: User, now: dt.datetime | None = None) -> list[OnCallShift]:
    """The admin's institution's shifts that have not ended yet, earliest first."""
    _require_admin(admin)
    now = now or utcnow()
    shifts = session.scalars(select(OnCallShift).where(OnCallShift.institution_id == admin.institution_id)
                             .order_by(OnCallShift.starts_at, OnCallShift.id))
    return [s for s in shifts if as_utc(s.ends_at) > now]


def rosterable(session: Session, admin: User) -> list[User]:
    """Who can be put on call: the active pathologists of the admin's institution."""
    _require_admin(admin)
    return list(session.scalars(select(User).where(
        User.institution_id == admin.institution_id, User.role == Role.PATHOLOGIST, User.active.is_(True))
        .order_by(User.full_name, User.id)))


def add_shift(session: Session, admin: User, data: dict[str, Any]) -> OnCallShift:
    """Put a pathologist of the admin's own institution on call from ``starts_at`` to ``ends_at``."""
    _require_admin(admin)
    try:
        user_id = int(data.get("user_id") or 0)
    except (TypeError, ValueError):
        user_id = 0
    user = session.get(User, user_id) if user_id else None
    if user is None or user.institution_id != admin.institution_id or user.role is not Role.PATHOLOGIST \
            or not user.active:
        raise ValidationFailed("Choose an active pathologist of your institution.", code="on_call_user_invalid",
                               details={"field": "user_id"})
    zone_name = admin.institution.time_zone if admin.institution else None
    starts = _parse_time(data.get("starts_at"), "starts_at", zone_name)
    ends = _parse_time(data.get("ends_at"), "ends_at", zone_name)
    if ends <= starts:
        raise ValidationFailed("The shift must end after it starts.", code="on_call_end_before_start",
                               details={"field": "ends_at"})
    if ends - starts > dt.timedelta(days=7):
        raise ValidationFailed("A shift can last at most 7 days.", code="on_call_too_long",
                               details={"field": "ends_at"})
    phone = str(data.get("phone") or "").strip()
    if phone and (len(phone) > 32 or not all(ch.isdigit() or ch in "+- ()" for ch in phone)):
        raise ValidationFailed("The phone number may contain only digits, spaces and + - ( ).",
                               code="on_call_phone_invalid", details={"field": "phone"})
    shift = OnCallShift(institution_id=admin.institution_id, user_id=user.id, starts_at=starts, ends_at=ends,
                        phone=phone, created_by_id=admin.id)
    session.add(shift)
    session.flush()
    audit.record(session, "on_call.shift_added", actor=admin, object_type="on_call_shift", object_id=shift.id,
                 details={"user_id": user.id, "starts_at": starts.isoformat(), "ends_at": ends.isoformat()})
    log.info("on-call shift added", extra={"shift_id": shift.id, "institution_id": admin.institution_id})
    return shift


def remove_shift(session: Session, admin: User, shift_id: int) -> None:
    _require_admin(admin)
    shift = session.get(OnCallShift, shift_id)
    if shift is None or shift.institution_id != admin.institution_id:
        raise NotFound("Not found.", code="not_found")
    audit.record(session, "on_call.shift_removed", actor=admin, object_type="on_call_shift", object_id=shift.id,
                 details={"user_id": shift.user_id})
    session.delete(shift)


def on_call(session: Session, institution_id: int, now: dt.datetime | None = None) -> list[OnCallShift]:
    """Shifts of ``institution_id`` running at ``now`` whose pathologist is still active."""
    now = now or utcnow()
    shifts = session.scalars(select(OnCallShift).where(OnCallShift.institution_id == institution_id)
                             .order_by(OnCallShift.starts_at, OnCallShift.id))
    return [s for s in shifts if as_utc(s.starts_at) <= now < as_utc(s.ends_at) and s.user.active]


# ---------------------------------------------------------------- paging
def page(session: Session, c: Consultation, now: dt.datetime | None = None) -> list[FrozenPage]:
    """Page the receiving institution for a frozen request (called by ``consultations.submit``).

    Returns the pages; each paged user also gets a ``frozen_page`` notification (bell and
    e-mail) and an SMS job, enqueued once the submission is committed."""
    now = now or utcnow()
    if c.receiving_institution_id is None:
        return []
    targets: dict[int, str] = {}
    for shift in on_call(session, c.receiving_institution_id, now):
        targets.setdefault(shift.user_id, shift.phone)
    fallback = not targets
    if fallback:
        for u in session.scalars(select(User).where(User.institution_id == c.receiving_institution_id,
                                                    User.role == Role.PATHOLOGIST, User.active.is_(True))
                                 .order_by(User.id)):
            targets[u.id] = ""
    configured = bool(runtime.settings().sms_webhook_url)
    pages = []
    for user_id, phone in targets.items():
        p = FrozenPage(consultation_id=c.id, user_id=user_id, fallback=fallback, created_at=now, phone=phone,
                       sms_status="pending" if configured else "not_configured", sms_error="", sms_attempts=0)
        session.add(p)
        pages.append(p)
    session.flush()
    users = [session.get(User, uid) for uid in targets]
    notifications.notify(session, users, "frozen_page", c, fallback=fallback)
    if configured:
        for p in pages:
            job = jobs.create(session, SMS_JOB, max_attempts=SMS_MAX_ATTEMPTS)
            job.progress = json.dumps({"page_id": p.id})
            session.info.setdefault("frozen_sms_jobs", []).append(job.id)
    audit.record(session, "consultation.frozen_paged", object_type="consultation", object_id=c.id, case_id=c.case_id,
                 details={"paged_user_ids": list(targets), "fallback": fallback,
                          "sms": "queued" if configured else "not_configured"})
    log.info("frozen request paged", extra={"consultation_id": c.id, "paged": len(pages), "fallback": fallback,
                                             "sms": "queued" if configured else "not_configured"})
    return pages


@event.listens_for(Session, "after_commit")
def _enqueue_sms(session: Session) -> None:
    for job_id in session.info.pop("frozen_sms_jobs", []):
        try:
            jobs.enqueue(job_id)
        except Exception:  # noqa: BLE001 - the job row stays queued; the reaper re-queues it
            log.exception("frozen SMS job not enqueued", extra={"job_id": job_id})


@event.listens_for(Session, "after_rollback")
def _forget_sms(session: Session) -> None:
    session.info.pop("frozen_sms_jobs", None)


def sms_payload(session: Session, p: FrozenPage) -> dict[str, Any]:
    """The JSON the SMS gateway receives: the number (if the roster has one), the user and the text."""
    c = session.get(Consultation, p.consultation_id)
    user = p.user
    locale = notifications.recipient_locale(user)
    link = f"{runtime.settings().base_url}/consultations/{c.id}"
    return {"kind": "frozen_page", "page_id": p.id, "consultation_id": c.id, "case": c.case.case_number,
            "to": p.phone, "username": user.username, "name": user.full_name, "email": user.email or "",
            "fallback": p.fallback, "locale": locale,
            "text": render(locale, SMS_TEXT, case=c.case.case_number, link=link)}


def run_sms(session: Session, job: Job, _ctx: Any) -> None:
    """Job handler: POST the page to ``SMS_WEBHOOK_URL``; any failure raises, so the job is retried."""
    page_id = json.loads(job.progress or "{}").get("page_id")
    p = session.get(FrozenPage, page_id)
    if p is None:
        return  # the request was deleted
    url = runtime.settings().sms_webhook_url
    if not url:
        p.sms_status = "not_configured"
        return
    body = json.dumps(sms_payload(session, p), ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json; charset=utf-8"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the operator's own URL
        if not 200 <= response.status < 300:
            raise OSError(f"SMS webhook answered HTTP {response.status}")
    p.sms_status, p.sms_attempts, p.sms_error = "sent", job.attempts, ""
    log.info("frozen SMS sent", extra={"page_id": p.id, "attempts": job.attempts})


def sms_failed(session: Session, job: Job) -> None:
    """Failure hook: every attempt failed; the page stays, marked so the alarm says SMS failed."""
    page_id = json.loads(job.progress or "{}").get("page_id")
    p = session.get(FrozenPage, page_id)
    if p is not None:
        p.sms_status, p.sms_attempts, p.sms_error = "failed", job.attempts, (job.error or "")[:500]
        session.commit()


# ---------------------------------------------------------------- the alarm
#: A page rings only while its request still waits for this tier's answer: once the request is
#: cancelled, answered (reported and after) or passed up to the next tier, an unacknowledged alarm
#: would send a pathologist running for nothing, so it goes quiet (the page row stays, for the record).
RINGING_STATES = (ConsultationState.TRIAGE, ConsultationState.ASSIGNED, ConsultationState.IN_REVIEW,
                  ConsultationState.INFO_REQUESTED)


def alarms(session: Session, user: User) -> list[FrozenPage]:
    """The user's unacknowledged pages of requests still awaiting an answer, newest first (the banner
    on every page)."""
    return list(session.scalars(select(FrozenPage).join(Consultation, Consultation.id == FrozenPage.consultation_id)
                                .where(FrozenPage.user_id == user.id, FrozenPage.acknowledged_at.is_(None),
                                       Consultation.state.in_(RINGING_STATES))
                                .order_by(FrozenPage.id.desc())))


def acknowledge(session: Session, user: User, page_id: int, now: dt.datetime | None = None) -> FrozenPage:
    """The paged pathologist has seen the page: the alarm stops on their screens."""
    p = session.get(FrozenPage, page_id)
    if p is None or p.user_id != user.id:
        raise NotFound("Not found.", code="not_found")
    if p.acknowledged_at is None:
        p.acknowledged_at = now or utcnow()
        audit.record(session, "consultation.frozen_page_acknowledged", actor=user, object_type="consultation",
                     object_id=p.consultation_id, details={"page_id": p.id})
        log.info("frozen page acknowledged", extra={"page_id": p.id, "consultation_id": p.consultation_id})
    return p


def pages_of(session: Session, c: Consultation) -> list[FrozenPage]:
    """Everyone paged for a request, for the case page (who, acknowledged, SMS status)."""
    return list(session.scalars(select(FrozenPage).where(FrozenPage.consultation_id == c.id)
                                .order_by(FrozenPage.id)))


def alarm_json(session: Session, p: FrozenPage) -> dict[str, Any]:
    c = session.get(Consultation, p.consultation_id)
    return {"id": p.id, "consultation_id": p.consultation_id, "case": c.case.case_number if c else "",
            "fallback": p.fallback, "sms_status": p.sms_status, "created_at": as_utc(p.created_at).isoformat(),
            "clock": clock(c).as_json() if c is not None else None}


# ---------------------------------------------------------------- the minutes clock
class Clock:
    """Minutes since submission against the frozen target; stops when the report is signed."""

    def __init__(self, submitted_at: dt.datetime, stopped_at: dt.datetime | None, target: int,
                 now: dt.datetime) -> None:
        self.submitted_at = as_utc(submitted_at)
        self.stopped_at = as_utc(stopped_at)
        self.target_minutes = target
        end = self.stopped_at or as_utc(now)
        self.minutes = max(0.0, (end - self.submitted_at).total_seconds() / 60)

    @property
    def level(self) -> str:
        """ok (green) | amber (nearing the target) | red (past it)."""
        if self.minutes >= self.target_minutes:
            return "red"
        return "amber" if self.minutes >= AMBER_FRACTION * self.target_minutes else "ok"

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None

    def as_json(self) -> dict[str, Any]:
        return {"submitted_at": self.submitted_at.isoformat(), "target_minutes": self.target_minutes,
                "stopped_at": self.stopped_at.isoformat() if self.stopped_at else None,
                "minutes": int(self.minutes), "level": self.level, "amber_fraction": AMBER_FRACTION}


def clock(c: Consultation | None, now: dt.datetime | None = None) -> Clock | None:
    """The clock of a submitted frozen request (``None`` for other requests)."""
    if c is None or not is_frozen(c) or c.submitted_at is None:
        return None
    return Clock(c.submitted_at, c.reported_at, target_minutes(), now or utcnow())


# ---------------------------------------------------------------- the short report template
TEMPLATE = {
    "zh": {"gross_description": "送检组织：\n大小：\n切面：",
           "microscopic_description": "冰冻切片镜下：",
           "diagnosis": "（冰冻）\n良性 / 恶性 / 不能确定，待石蜡切片\n切缘：",
           "comment": "冰冻切片诊断为术中快速诊断，最终诊断以石蜡切片报告为准。"},
    "en": {"gross_description": "Specimen received:\nSize:\nCut surface:",
           "microscopic_description": "Frozen section:",
           "diagnosis": "(Frozen section)\nBenign / malignant / deferred to permanent sections\nMargins:",
           "comment": "Intraoperative frozen-section diagnosis; the final diagnosis is given on "
                      "permanent (paraffin) sections."},
}


def report_template(c: Consultation) -> dict[str, str]:
    """Report fields prefilled with the short frozen-section structure, in the report's language
    (the referring institution's ``report_language``, Chinese by default); empty for other requests."""
    if not is_frozen(c):
        return {}
    language = getattr(c.requesting_institution, "report_language", "zh") or "zh"
    return dict(TEMPLATE["en" if language == "en" else "zh"])


def institution_name(session: Session, institution_id: int) -> str:
    inst = session.get(Institution, institution_id)
    return inst.name if inst else ""


# ---------------------------------------------------------------- for the web layer
# Each call below is one request's work on the request's session (``db.SessionLocal``), so the
# handlers in web/frozen.py stay one line and import neither models nor sessions.
def _request_session() -> Session:
    from ..db import SessionLocal  # noqa: PLC0415 - the request-scoped session, bound by the app
    return SessionLocal()


def _in_request(fn: Any, *args: Any) -> Any:
    session = _request_session()
    try:
        out = fn(session, *args)
        session.commit()
        return out
    except Exception:
        session.rollback()
        raise


def alarms_now(user: User) -> list[dict[str, Any]]:
    """The banner's content for ``user`` (empty for anyone not paged)."""
    session = _request_session()
    return [alarm_json(session, p) for p in alarms(session, user)]


def acknowledge_now(user: User, page_id: int) -> dict[str, Any]:
    return _in_request(lambda s: alarm_json(s, acknowledge(s, user, page_id)))


def roster_now(admin: User) -> dict[str, Any]:
    session = _request_session()
    zone_name = admin.institution.time_zone if admin.institution else None
    return {"shifts": roster(session, admin), "pathologists": rosterable(session, admin),
            "on_call_now": {s.id for s in on_call(session, admin.institution_id)},
            "zone": zone_name, "institution": institution_name(session, admin.institution_id)}


def add_shift_now(admin: User, data: dict[str, Any]) -> None:
    _in_request(lambda s: add_shift(s, admin, data))


def remove_shift_now(admin: User, shift_id: int) -> None:
    _in_request(lambda s: remove_shift(s, admin, shift_id))


def case_clock_now(case_id: int) -> Clock | None:
    """The clock of the newest submitted frozen request on a case (the viewer shows it)."""
    session = _request_session()
    c = session.scalar(select(Consultation).where(Consultation.case_id == case_id,
                                                  Consultation.submitted_at.is_not(None))
                       .order_by(Consultation.id.desc()).limit(1))
    return clock(c)


def pages_now(c: Consultation) -> list[FrozenPage]:
    return pages_of(_request_session(), c)


def dashboard_now() -> dict[str, Any]:
    """The turnaround dashboard's frozen-section card (minutes: median, p90, share within target)."""
    from . import turnaround  # noqa: PLC0415 - turnaround's figures, read on the request's session
    return turnaround.frozen_figures(_request_session())
