"""The HL7 outbox: queued in the signing transaction, sent by the worker, retried while the LIS is down.

* :func:`queue_for_version` is called by ``reports.signing.sign`` inside its transaction: the
  outbox row and its job exist exactly when the signature does.
* :func:`run_send_job` is the ``hl7_send`` job handler. An ACK AA marks the message delivered;
  AE/AR mark it failed with the ACK's text (no retry helps: an admin looks and resends); no ACK
  (refused, timed out, closed) keeps it queued and plans a new ``hl7_send`` job after a back-off
  that doubles from ``HL7_RETRY_BASE_SECONDS`` up to ``HL7_RETRY_MAX_SECONDS``, without end.
* Jobs are enqueued only after the transaction commits (``after_commit``), so the worker never
  looks for a row that is not there yet, and a rolled-back signature queues nothing.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import re
import secrets
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from pathology_hub.domain import audit, jobs, unit_of_work
from pathology_hub.domain.errors import NotFound, ValidationFailed
from pathology_hub.domain.hl7 import message as hl7_message
from pathology_hub.domain.hl7 import mllp
from pathology_hub.domain.hl7 import settings as cfg
from pathology_hub.models import Institution, Job, User, utcnow
from pathology_hub.models.hl7 import Hl7Message
from pathology_hub.models.reports import ReportVersion

log = logging.getLogger("pathology_hub.hl7")

JOB_KIND = "hl7_send"
HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


# --- the LIS endpoint of an institution -------------------------------------------------------

def set_endpoint(session: Session, inst: Institution, host: Any, port: Any, *, actor: User | None = None) -> None:
    """Where this institution's LIS listens (both empty: results are not sent to it)."""
    host = (host or "").strip() if isinstance(host, str) else ""
    port_text = (port or "").strip() if isinstance(port, str) else str(port or "")
    if not host and not port_text:
        inst.lis_host, inst.lis_port = None, None
    else:
        if not _valid_host(host):
            raise ValidationFailed("Enter the LIS host name or IP address.", code="invalid_lis_host",
                                   details={"field": "lis_host"})
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValidationFailed("The LIS port must be a number from 1 to 65535.", code="invalid_lis_port",
                                   details={"field": "lis_port"})
        inst.lis_host, inst.lis_port = host, int(port_text)
    audit.record(session, "institution.lis_endpoint", actor=actor, object_type="institution", object_id=inst.id,
                 details={"lis_host": inst.lis_host, "lis_port": inst.lis_port})


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(HOST_RE.match(host))


# --- queueing (in the signing transaction) ---------------------------------------------------

def queue_for_version(session: Session, v: ReportVersion, pdf: bytes, *, now: dt.datetime) -> Hl7Message | None:
    """Write the ORU^R01 of the just-signed ``v`` to the outbox of the case's (referring) institution."""
    receiver = v.report.consultation.case.institution
    if not receiver.lis_host or not receiver.lis_port:
        return None
    control_id = f"PH{now:%Y%m%d%H%M%S}{secrets.token_hex(6).upper()}"
    pdf_url = f"/api/v1/reports/{v.report_id}/versions/{v.number}/pdf"
    from pathology_hub.domain import report_documents as docs
    built = hl7_message.build(v, receiver=receiver, control_id=control_id, pdf=pdf, pdf_url=docs.view_url(pdf_url),
                              now=now)
    row = Hl7Message(institution_id=receiver.id, version_id=v.id, control_id=control_id,
                     result_status=built.result_status, message=built.text, status="queued", attempts=0,
                     next_attempt_at=now, created_at=now)
    session.add(row)
    _new_job(session, row)
    return row


def _new_job(session: Session, row: Hl7Message, delay: float | None = None) -> Job:
    job = jobs.create(session, JOB_KIND, max_attempts=1)
    if delay:
        job.retry_at = utcnow() + dt.timedelta(seconds=delay)
    row.job_id = job.id
    session.flush()
    session.info.setdefault("hl7_jobs", []).append((job.id, delay))
    return job


@event.listens_for(Session, "after_commit")
def _enqueue_after_commit(session: Session) -> None:
    for job_id, delay in session.info.pop("hl7_jobs", []):
        try:
            jobs.enqueue(job_id, delay=delay)
        except Exception:  # noqa: BLE001 - the reaper re-queues the job; signing must not fail here
            log.exception("hl7 job not enqueued", extra={"job_id": job_id})


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop("hl7_jobs", None)


# --- sending (the worker's job) --------------------------------------------------------------

def retry_delay(attempts: int) -> float:
    """Pause after the ``attempts``-th failed try: base, 2×base, 4×base … capped."""
    return min(cfg.retry_max_seconds(), cfg.retry_base_seconds() * 2 ** max(0, attempts - 1))


def run_send_job(session: Session, job: Job, _ctx: Any) -> None:
    row = session.scalar(select(Hl7Message).where(Hl7Message.job_id == job.id))
    if row is None or row.status != "queued":
        return  # delivered, failed, or superseded by a resend's newer job
    send_now(session, row)


def send_job_failed(session: Session, job: Job) -> None:
    """Failure hook: the send job crashed for good (not a refused or unanswered send, which plans
    its own retry). The message must not be stranded as "queued" with no job behind it, so the
    crash is recorded and a new attempt is planned on the usual schedule."""
    row = session.scalar(select(Hl7Message).where(Hl7Message.job_id == job.id))
    if row is None or row.status != "queued":
        return
    delay = retry_delay(max(1, row.attempts))
    row.last_error = (job.error or "the send job stopped unexpectedly")[:2000]
    row.next_attempt_at = utcnow() + dt.timedelta(seconds=delay)
    log.warning("hl7 send job crashed; retrying", extra={"hl7_id": row.id, "retry_in_seconds": delay})
    _new_job(session, row, delay=delay)
    session.commit()


def send_now(session: Session, row: Hl7Message) -> str:
    """One attempt; commits, and returns the row's new status."""
    inst = row.institution
    now = utcnow()
    row.attempts += 1
    row.last_attempt_at = now
    if not inst.lis_host or not inst.lis_port:
        error = "no LIS endpoint configured for this institution"
        reply = None
    else:
        try:
            reply = mllp.send(inst.lis_host, inst.lis_port, row.message, cfg.timeout_seconds())
            error = None
        except mllp.MllpUnavailable as exc:
            reply, error = None, str(exc)
    if reply is None:
        delay = retry_delay(row.attempts)
        row.last_error = error
        row.next_attempt_at = now + dt.timedelta(seconds=delay)
        log.warning("hl7 message not acknowledged; retrying",
                    extra={"hl7_id": row.id, "attempts": row.attempts, "retry_in_seconds": delay, "error": error})
        _new_job(session, row, delay=delay)
        session.commit()
        return row.status
    ack = mllp.parse_ack(reply)
    row.ack_code = ack.code[:2]
    row.next_attempt_at = None
    if ack.code in ("AA", "CA") and ack.control_id == row.control_id:
        row.status, row.delivered_at, row.last_error = "delivered", now, None
    else:
        row.status = "failed"
        if ack.code in ("AA", "CA"):
            row.last_error = f"ACK for another message ({ack.control_id or '?'})"
        else:
            row.last_error = f"{ack.code}: {ack.text}".strip(": ")[:2000] or ack.code
    log.info("hl7 message answered", extra={"hl7_id": row.id, "ack": ack.code, "status": row.status})
    session.commit()
    return row.status


# --- the admin's view and resend ---------------------------------------------------------------

def recent(session: Session, limit: int = 100) -> list[Hl7Message]:
    return list(session.scalars(select(Hl7Message).order_by(Hl7Message.id.desc()).limit(limit)))


def resend(session: Session, message_id: int, *, actor: User, ip: str | None = None) -> Hl7Message:
    """Queue a message again (a failed one, or a queued one now rather than after its back-off)."""
    row = session.get(Hl7Message, message_id)
    if row is None:
        raise NotFound("This HL7 message does not exist.", code="hl7_message_not_found")
    previous = row.status
    row.status, row.next_attempt_at = "queued", utcnow()
    _new_job(session, row)
    audit.record(session, "hl7.resent", actor=actor, object_type="hl7_message", object_id=row.id, ip=ip,
                 details={"control_id": row.control_id, "previous_status": previous, "attempts": row.attempts})
    return row


# ---------------------------------------------------------------- units of work for the admin page
# The web handler holds no session: each of these owns its unit of work (see ``unit_of_work``).
def recent_messages(limit: int = 100) -> list[Hl7Message]:
    """:func:`recent` in the current unit of work."""
    return recent(unit_of_work.current(), limit)


def save_endpoint(inst: Institution, host: Any, port: Any, *, actor: User) -> None:
    """:func:`set_endpoint`, committed; a refused endpoint changes nothing."""
    with unit_of_work.transaction() as session:
        set_endpoint(session, session.merge(inst), host, port, actor=actor)


def resend_message(message_id: int, *, actor: User, ip: str | None = None) -> Hl7Message:
    """:func:`resend`, committed."""
    with unit_of_work.transaction() as session:
        return resend(session, message_id, actor=actor, ip=ip)
