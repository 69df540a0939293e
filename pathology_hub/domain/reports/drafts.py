"""Drafting: starting a report, autosaving a draft with optimistic locking, opening an addendum or
amendment on top of a signed version.

A stale autosave answers 409 ``report_version_conflict`` with the current content, so two open
editors never overwrite each other silently (see the package docstring).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pathology_hub.domain import audit, frozen, policy, report_codes
from pathology_hub.domain import report_documents as docs
from pathology_hub.domain.errors import Conflict, ValidationFailed
from pathology_hub.domain.reports.errors import ReportVersionConflict
from pathology_hub.domain.reports.guards import _editable_draft, _expected_revision, _now, _refuse, _text
from pathology_hub.domain.reports.reading import FIELDS, current
from pathology_hub.models import User
from pathology_hub.models.consultations import Consultation, ConsultationState as S
from pathology_hub.models.reports import Report, ReportFigure, ReportVersion


KINDS = ("addendum", "amendment")


def create(session: Session, user: User, c: Consultation, *, ip: str | None = None,
           now: dt.datetime | None = None) -> Report:
    """Start the report of a consultation under review (the assignee only)."""
    policy.ensure(user, "consultation.view", c)
    if session.scalar(select(Report.id).where(Report.consultation_id == c.id)) is not None:
        raise Conflict("This consultation already has a report.", code="report_exists")
    policy.ensure(user, "report.create", c)
    if c.state is not S.IN_REVIEW:
        raise Conflict("A report is written while the consultation is in review.", code="invalid_state",
                       details={"state": c.state.value})
    now = _now(now)
    report = Report(consultation_id=c.id, case_id=c.case_id, created_by_id=user.id, created_at=now)
    session.add(report)
    session.flush()
    specimen = ", ".join(p for p in (c.case.specimen_type, c.case.specimen_site) if p)
    session.add(ReportVersion(report_id=report.id, number=1, kind="original", status="draft", revision=1,
                              specimen=specimen, author_id=user.id, created_at=now, updated_at=now,
                              **frozen.report_template(c)))  # a frozen section starts from its short template
    session.flush()
    session.refresh(report)
    audit.record(session, "report.created", actor=user, object_type="report", object_id=report.id,
                 case_id=c.case_id, ip=ip, details={"consultation_id": c.id})
    return report


def _clean_update(data: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in FIELDS:
        if name in data:
            values[name] = _text(data[name], name)
    if "diagnosis_code" in data:
        code = _text(data.get("diagnosis_code"), "diagnosis_code", 32)
        if not code:
            values.update(diagnosis_code="", diagnosis_code_system="", diagnosis_code_display="")
        else:
            found = report_codes.find(code, _text(data.get("diagnosis_code_system"), "diagnosis_code_system", 32))
            if found is None:
                raise ValidationFailed("Unknown diagnosis code %(value)s; choose one from the configured list.",
                                       code="unknown_diagnosis_code", details={"field": "diagnosis_code"},
                                       params={"value": str(code)})
            values.update(diagnosis_code=found.code, diagnosis_code_system=found.system,
                          diagnosis_code_display=found.display)
    return values


def update_draft(session: Session, user: User, report: Report, data: dict[str, Any], *, revision: Any,
                 ip: str | None = None, now: dt.datetime | None = None) -> ReportVersion:
    """Autosave: change the draft if it is still at ``revision`` (one conditional UPDATE)."""
    v = _editable_draft(session, user, report, "update", ip)
    expected = _expected_revision(revision)
    values = _clean_update(data)
    now = _now(now)
    result = session.execute(update(ReportVersion).where(
        ReportVersion.id == v.id, ReportVersion.revision == expected, ReportVersion.status == "draft")
        .values(**values, revision=ReportVersion.revision + 1, updated_at=now)
        .execution_options(synchronize_session=False))
    session.refresh(v)
    if result.rowcount != 1:
        if v.status != "draft":
            raise _refuse(session, user, v, "update", ip)
        raise ReportVersionConflict(v)
    audit.record(session, "report.draft_saved", actor=user, object_type="report", object_id=report.id,
                 case_id=report.case_id, ip=ip, details={"version": v.number, "revision": v.revision,
                                                         "fields": sorted(values)})
    return v


def new_version(session: Session, user: User, report: Report, kind: Any, reason: Any, *, ip: str | None = None,
                now: dt.datetime | None = None) -> ReportVersion:
    """Open an addendum or amendment draft on top of the signed report (its content and figures copied)."""
    policy.ensure(user, "report.view", report)
    last = current(report)
    if last.status == "draft":
        raise Conflict("Version %(version)s is still a draft; sign or edit it instead.", code="report_draft_exists",
                       params={"version": last.number})
    policy.ensure(user, "report.amend", report)
    if kind not in KINDS:
        raise ValidationFailed("kind must be addendum or amendment.", code="invalid_choice", details={"field": "kind"})
    reason = _text(reason, "reason", 2000)
    if kind == "amendment" and not reason:
        raise ValidationFailed("An amendment needs a reason.", code="missing_field", details={"field": "reason"})
    now = _now(now)
    v = ReportVersion(report_id=report.id, number=last.number + 1, kind=kind, reason=reason, status="draft",
                      revision=1, author_id=user.id, created_at=now, updated_at=now,
                      diagnosis_code=last.diagnosis_code, diagnosis_code_system=last.diagnosis_code_system,
                      diagnosis_code_display=last.diagnosis_code_display,
                      **{name: getattr(last, name) for name in FIELDS})
    session.add(v)
    session.flush()
    for f in docs.figures_of(session, last):
        session.add(ReportFigure(version_id=v.id, slide_id=f.slide_id, position=f.position, caption=f.caption,
                                 view_link=f.view_link, bounds=f.bounds, rotation=f.rotation,
                                 magnification=f.magnification, image_key=f.image_key, sha256=f.sha256,
                                 created_by_id=f.created_by_id, created_at=f.created_at))
    session.flush()
    session.refresh(report)
    audit.record(session, f"report.{kind}_started", actor=user, object_type="report", object_id=report.id,
                 case_id=report.case_id, ip=ip, details={"version": v.number, "reason": reason})
    return v
