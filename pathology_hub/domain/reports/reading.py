"""Reading reports: which versions a user sees, the version in force, and who is told about a result.

Every other report module reads versions through these few functions, so "which version counts"
and "may this user see drafts" are answered in one place.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from pathology_hub.domain import audit, policy
from pathology_hub.domain import consultations as consultations_svc
from pathology_hub.domain.errors import NotFound
from pathology_hub.models import Case, User
from pathology_hub.models.consultations import Consultation
from pathology_hub.models.reports import Report, ReportVersion


FIELDS = ("specimen", "gross_description", "microscopic_description", "diagnosis", "comment", "recommendations",
          "answer_to_question")


def signed_version_exists(session: Session, report_id: int) -> bool:
    return session.scalar(select(ReportVersion.id).where(
        ReportVersion.report_id == report_id, ReportVersion.status.in_(("signed", "superseded"))).limit(1)) is not None


def case_report_signed(case: Case) -> bool:
    """The real "is this case's report signed?" predicate used by the annotation rules."""
    session = object_session(case)
    if session is None:
        return False
    return session.scalar(select(ReportVersion.id).join(Report, Report.id == ReportVersion.report_id).where(
        Report.case_id == case.id, ReportVersion.status.in_(("signed", "superseded"))).limit(1)) is not None


def current(report: Report) -> ReportVersion:
    return report.versions[-1]


def latest_signed(report: Report) -> ReportVersion | None:
    signed = [v for v in report.versions if v.status in ("signed", "superseded")]
    return signed[-1] if signed else None


def visible_versions(user: User, report: Report) -> list[ReportVersion]:
    """Drafts are the pathologists' working material; the centre sees signed versions only."""
    if policy.can(user, "report.view_drafts", report):
        return list(report.versions)
    return [v for v in report.versions if v.status != "draft"]


def get(session: Session, user: User, report_id: int) -> Report:
    report = session.get(Report, report_id)
    if report is None:
        raise NotFound("No such report.")
    policy.ensure(user, "report.view", report)
    return report


def for_consultation(session: Session, user: User, c: Consultation) -> Report | None:
    policy.ensure(user, "consultation.view", c)
    report = session.scalar(select(Report).where(Report.consultation_id == c.id))
    if report is None or not policy.can(user, "report.view", report):
        return None
    return report


def version_by_number(user: User, report: Report, number: int) -> ReportVersion:
    for v in visible_versions(user, report):
        if v.number == number:
            return v
    raise NotFound("No such report version.")


def version_json_fields(v: ReportVersion) -> dict[str, Any]:
    data = {name: getattr(v, name) for name in FIELDS}
    data.update({"diagnosis_code": v.diagnosis_code, "diagnosis_code_system": v.diagnosis_code_system,
                 "diagnosis_code_display": v.diagnosis_code_display})
    return data


def record_view(session: Session, user: User, report: Report, *, what: str = "report", ip: str | None = None) -> None:
    audit.record(session, "report.viewed", actor=user, object_type="report", object_id=report.id,
                 case_id=report.case_id, ip=ip, details={"what": what})


def _consultation_root(c: Consultation) -> Consultation:
    while c.parent is not None:
        c = c.parent
    return c


def clinicians_to_notify(session: Session, c: Consultation) -> list[User]:
    """The requesting side of the whole chain: the centre's clinician and technicians, the escalating pathologist."""
    root = _consultation_root(c)
    users = consultations_svc.requester_side(session, root)
    if c is not root:
        users += consultations_svc.requester_side(session, c)
    return users
