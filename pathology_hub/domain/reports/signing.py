"""Signing and co-signing: the password under the login's lock-out, the signed PDF, the one
conditional UPDATE that lets exactly one of two concurrent signatures win, superseding the
previous version and telling everyone who acted on it.

See the package docstring for the lifecycle this implements.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pathology_hub.domain import accounts, audit, notifications, policy, results, turnaround
from pathology_hub.domain import consultations as consultations_svc
from pathology_hub.domain import report_documents as docs
from pathology_hub.domain import report_permissions
from pathology_hub.domain.errors import Conflict, ValidationFailed
from pathology_hub.domain.hl7 import outbox as hl7_outbox
from pathology_hub.domain.reports.errors import ReportVersionConflict, SignerLocked, WrongPassword
from pathology_hub.domain.reports.guards import _expected_revision, _now, _refuse, _text
from pathology_hub.domain.reports.reading import clinicians_to_notify, current
from pathology_hub.models import User
from pathology_hub.models.consultations import Consultation, ConsultationState as S
from pathology_hub.models.reports import Report, ReportSignature, ReportVersion, ResultAcknowledgement


DEFAULT_MEANING = "diagnosis approved / 诊断已批准"


COSIGN_MEANING = "concurrence with the diagnosis / 同意该诊断"


def _check_password(session: Session, user: User, report: Report, password: Any, action: str,
                    ip: str | None, now: dt.datetime | None = None) -> None:
    """The signer's password, under the same lock-out as the login (see ``accounts.reserve_password_attempt``).

    A wrong password counts as a failed login; a locked account cannot sign even with the right
    one.  Both refusals are audited (``report.<action>_failed``) without the password itself."""
    if not isinstance(password, str) or not password:
        raise ValidationFailed("Enter your password to sign.", code="password_required", details={"field": "password"})
    now = _now(now)
    limits = accounts.lockout_policy()
    correct, attempt, locked_now = accounts.check_password_limited(session, user, password, limits, now)
    if attempt.locked_minutes:
        audit.record(session, f"report.{action}_failed", actor=user, object_type="report", object_id=report.id,
                     case_id=report.case_id, ip=ip, details={"reason": "account_locked"})
        raise SignerLocked("Too many wrong passwords: signing is locked for %(retry_after_minutes)s minutes; "
                           "the report was not signed.", details={"retry_after_minutes": attempt.locked_minutes})
    if not correct:
        audit.record(session, f"report.{action}_failed", actor=user, object_type="report", object_id=report.id,
                     case_id=report.case_id, ip=ip,
                     details={"reason": "wrong password", "failed_attempt": True, "locked_now": locked_now})
        if locked_now:
            minutes = accounts.locked_minutes(user, now)
            raise SignerLocked("Too many wrong passwords: signing is locked for %(retry_after_minutes)s minutes; "
                               "the report was not signed.", details={"retry_after_minutes": minutes})
        raise WrongPassword("The password is not correct; the report was not signed.")


def _manifest(user: User, role: str, meaning: str, at: dt.datetime) -> ReportSignature:
    return ReportSignature(user_id=user.id, role=role, full_name=user.full_name, institution=user.institution.name,
                           meaning=meaning, signed_at=at, timezone=str(turnaround.timezone()))


def _location(user: User) -> str:
    return user.institution.name


def _new_code(session: Session) -> str:
    """20 base32 characters (100 bits): unguessable, and easy to type from a printout."""
    import base64
    while True:
        code = base64.b32encode(secrets.token_bytes(15)).decode().rstrip("=")
        if session.scalar(select(ReportVersion.id).where(ReportVersion.verification_code == code)) is None:
            return code


def _refuse_preview_slides(session: Session, report: Report) -> None:
    """The original file is the diagnostic record: no signature while a slide of the case is still only
    the uploader's coarse preview (domain/slides/preview.py); the pathologist is told which one."""
    from pathology_hub.domain.slides.reading import PREVIEW_VIEWABLE
    from pathology_hub.models import Slide
    waiting = [s.label for s in session.scalars(select(Slide).where(
        Slide.case_id == report.case_id, Slide.preview_level.is_not(None), Slide.deleted_at.is_(None)))
        if s.status in PREVIEW_VIEWABLE]
    if waiting:
        raise Conflict("Slide %(labels)s is still a preview: its full-resolution image has not arrived. "
                       "Sign the report once it has.", code="slides_preview_only",
                       params={"labels": ", ".join(waiting)})


def sign(session: Session, user: User, report: Report, *, password: Any, revision: Any, meaning: Any = None,
         ip: str | None = None, now: dt.datetime | None = None) -> ReportVersion:
    """Sign the current draft (the assignee, with their password); see the module docstring."""
    v = current(report)
    policy.ensure(user, "report.view", report)
    if v.status != "draft":
        raise _refuse(session, user, v, "sign", ip)
    policy.ensure(user, "report.sign", report)
    c = report.consultation
    if v.number == 1 and c.state is not S.IN_REVIEW:
        raise Conflict("The consultation must be in review to sign its report.", code="invalid_state",
                       details={"state": c.state.value})
    expected = _expected_revision(revision)
    if expected != v.revision:
        raise ReportVersionConflict(v)
    _refuse_preview_slides(session, report)
    _check_password(session, user, report, password, "sign", ip, now)
    if not v.diagnosis.strip():
        raise ValidationFailed("The diagnosis is required before signing.", code="missing_field",
                               details={"field": "diagnosis"})
    previous = report.versions[-2] if len(report.versions) > 1 else None
    if v.kind == "addendum" and previous is not None and (
            v.diagnosis != previous.diagnosis or v.diagnosis_code != previous.diagnosis_code):
        raise ValidationFailed("An addendum adds information and keeps the diagnosis; write an amendment to change "
                               "the diagnosis.", code="addendum_changes_diagnosis", details={"field": "diagnosis"})
    meaning = _text(meaning, "meaning", 200) or DEFAULT_MEANING
    now = _now(now)
    code = _new_code(session)
    signature = _manifest(user, "signer", meaning, now)
    doc = docs.build_document(session, v, signatures=[docs.signature_of(signature)], signed_at=now, signer=user,
                              verification_code=code,
                              history_overrides={previous.id: {"superseded": True}} if previous else None)
    pdf = docs.render_and_sign(doc, signer_name=user.full_name, reason=meaning, location=_location(user))
    # The decisive step: only one request can move this draft at this revision to "signed".
    result = session.execute(update(ReportVersion).where(
        ReportVersion.id == v.id, ReportVersion.revision == expected, ReportVersion.status == "draft")
        .values(status="signed", revision=ReportVersion.revision + 1, signed_at=now, signed_by_id=user.id,
                verification_code=code, updated_at=now)
        .execution_options(synchronize_session=False))
    session.refresh(v)
    if result.rowcount != 1:
        if v.status != "draft":
            raise _refuse(session, user, v, "sign", ip)
        raise ReportVersionConflict(v)
    signature.version_id = v.id
    session.add(signature)
    docs.store_file(session, v, "original", pdf, now=now)
    hl7_outbox.queue_for_version(session, v, pdf.data, now=now)  # same transaction: no signature without its message
    audit.record(session, "report.signed", actor=user, object_type="report", object_id=report.id,
                 case_id=report.case_id, ip=ip,
                 details={"version": v.number, "kind": v.kind, "sha256": pdf.sha256, "meaning": meaning})
    if previous is not None:
        _supersede(session, user, previous, v, now=now, ip=ip)
        consultations_svc.result_amended(session, user, c, v, ip=ip, now=now)
        _notify_new_version(session, c, previous, v, user)
    else:
        consultations_svc.mark_reported(session, user, c, ip=ip, now=now)
        consultations_svc.return_result(session, user, c, "", ip=ip, now=now)
        notifications.notify(session, clinicians_to_notify(session, c), "report_signed",
                             results.root_of(c), version=v.number)
    session.flush()
    return v


def _notify_new_version(session: Session, c: Consultation, previous: ReportVersion, v: ReportVersion,
                        signer: User) -> None:
    """Tell everyone who may have acted on the old result: the change and its reason come first."""
    root = results.root_of(c)
    acted = [a.user for a in session.scalars(select(ResultAcknowledgement).where(
        ResultAcknowledgement.consultation_id == root.id))]
    people = [*clinicians_to_notify(session, c), root.created_by, *acted]
    kind = "report_amended" if v.kind == "amendment" else "report_addendum"
    notifications.notify(session, [u for u in people if u is not None and u.id != signer.id], kind, root,
                         version=v.number, previous_version=previous.number, reason=v.reason,
                         previous_diagnosis=previous.diagnosis, diagnosis=v.diagnosis,
                         diagnosis_changed=previous.diagnosis != v.diagnosis
                         or previous.diagnosis_code != v.diagnosis_code,
                         signer=signer.full_name, institution=signer.institution.name)


def _supersede(session: Session, user: User, old: ReportVersion, new: ReportVersion, *, now: dt.datetime,
               ip: str | None) -> None:
    """Mark ``old`` superseded and store its signed "superseded copy" (the original file stays on record)."""
    old.status = "superseded"
    old.superseded_at = now
    old.superseded_by_number = new.number
    old.revision += 1
    sigs = [docs.signature_of(s) for s in docs.signatures_of(session, old)]
    doc = docs.build_document(session, old, signatures=sigs, verification_code=old.verification_code or "",
                              superseded_by=new.number,
                              history_overrides={old.id: {"superseded": True},
                                                 new.id: {"signed_at": now, "signer": user.full_name}})
    pdf = docs.render_and_sign(doc, signer_name=user.full_name,
                               reason=f"superseded by version {new.number}", location=_location(user))
    docs.store_file(session, old, "superseded", pdf, now=now)
    audit.record(session, "report.superseded", actor=user, object_type="report", object_id=old.report_id,
                 case_id=old.report.case_id, ip=ip,
                 details={"version": old.number, "superseded_by": new.number, "sha256": pdf.sha256})


def cosign(session: Session, user: User, report: Report, *, password: Any, meaning: Any = None,
           ip: str | None = None, now: dt.datetime | None = None) -> ReportVersion:
    """A second pathologist's concurrence with the current signed version (once per version)."""
    v = report_permissions.ensure_may_cosign(session, user, report)  # the rules, shared with the web's buttons
    _check_password(session, user, report, password, "cosign", ip, now)
    meaning = _text(meaning, "meaning", 200) or COSIGN_MEANING
    now = _now(now)
    row = _manifest(user, "co-signer", meaning, now)
    sigs = [docs.signature_of(s) for s in docs.signatures_of(session, v)] + [docs.signature_of(row)]
    doc = docs.build_document(session, v, signatures=sigs, verification_code=v.verification_code or "")
    pdf = docs.render_and_sign(doc, signer_name=user.full_name, reason=meaning, location=_location(user))
    expected = v.revision
    result = session.execute(update(ReportVersion).where(
        ReportVersion.id == v.id, ReportVersion.revision == expected, ReportVersion.status == "signed")
        .values(revision=ReportVersion.revision + 1).execution_options(synchronize_session=False))
    session.refresh(v)
    if result.rowcount != 1:
        raise Conflict("The report changed while co-signing; reload and try again.", code="report_version_conflict")
    row.version_id = v.id
    session.add(row)
    docs.store_file(session, v, "cosigned", pdf, now=now)
    audit.record(session, "report.cosigned", actor=user, object_type="report", object_id=report.id,
                 case_id=report.case_id, ip=ip, details={"version": v.number, "sha256": pdf.sha256})
    session.flush()
    return v
