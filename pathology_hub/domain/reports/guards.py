"""The checks every change to a draft goes through: clean text, the expected revision, and the
audited refusal when the version is already signed.

Drafting, figures and signing all change a draft; sharing these guards keeps "a signed version
never changes" one rule instead of three copies.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from pathology_hub.domain import audit, policy
from pathology_hub.domain.errors import Conflict, ValidationFailed
from pathology_hub.domain.reports.errors import ReportSigned
from pathology_hub.domain.reports.reading import current
from pathology_hub.models import User, utcnow
from pathology_hub.models.consultations import ConsultationState as S
from pathology_hub.models.reports import Report, ReportVersion


TEXT_LIMIT = 20_000


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or utcnow()


def _text(value: Any, field: str, limit: int = TEXT_LIMIT) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationFailed("%(field)s must be text.", code="invalid_field", details={"field": field})
    text = value.strip()
    if len(text) > limit:
        raise ValidationFailed("%(field)s is longer than %(max)s characters.", code="field_too_long",
                               details={"field": field, "max": limit})
    return text


def _refuse(session: Session, user: User, version: ReportVersion, attempted: str, ip: str | None) -> ReportSigned:
    audit.record(session, "report.edit_refused", actor=user, object_type="report", object_id=version.report_id,
                 case_id=version.report.case_id, ip=ip,
                 details={"version": version.number, "status": version.status, "attempted": attempted})
    return ReportSigned("Version %(version)s of this report is signed and can no longer be changed; "
                        "write an addendum or an amendment instead.",
                        details={"version": version.number, "status": version.status})


def _editable_draft(session: Session, user: User, report: Report, attempted: str, ip: str | None) -> ReportVersion:
    """The current draft, or an audited refusal when the current version is signed."""
    v = current(report)
    if v.status != "draft":
        raise _refuse(session, user, v, attempted, ip)
    policy.ensure(user, "report.edit", report)
    if report.consultation.state is S.CANCELLED:
        raise Conflict("The consultation was cancelled; its report can no longer be edited.", code="invalid_state",
                       details={"state": report.consultation.state.value})
    return v


def _expected_revision(value: Any) -> int:
    if isinstance(value, bool) or value is None:
        raise ValidationFailed("Send the revision the change is based on (field \"revision\" or an If-Match header).",
                               code="revision_required")
    try:
        return int(str(value).strip().strip('"').removeprefix("W/").strip('"'))
    except ValueError:
        raise ValidationFailed("revision must be an integer.", code="invalid_field",
                               details={"field": "revision"}) from None


def _bump_draft(session: Session, user: User, v: ReportVersion, attempted: str, now: dt.datetime,
                ip: str | None) -> None:
    """Next revision of a draft, only while it is still a draft (a concurrent signature wins)."""
    result = session.execute(update(ReportVersion).where(ReportVersion.id == v.id, ReportVersion.status == "draft")
                             .values(revision=ReportVersion.revision + 1, updated_at=now)
                             .execution_options(synchronize_session=False))
    session.refresh(v)
    if result.rowcount != 1:
        raise _refuse(session, user, v, attempted, ip)
