"""What a user may do with a report right now: "may Y edit, sign, co-sign or amend report Z?".

The policy (``policy.py``) says who may act on a report at all; this module adds what the
report's state allows (a draft is edited and signed, a signed version co-signed once by
someone other than its signer, then amended). The report workflow (``reports.py``) enforces
these checks and the web layer shows the same answers as buttons, from one definition.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy.orm import Session

from ..models import User
from ..models.reports import Report, ReportVersion
from . import policy
from . import report_documents as docs
from .errors import Conflict, DomainError


@dataclass(frozen=True)
class ReportActions:
    edit: bool
    sign: bool
    cosign: bool
    amend: bool

    def as_json(self) -> dict[str, bool]:
        return asdict(self)


def _latest_signed(report: Report) -> ReportVersion | None:
    signed = [v for v in report.versions if v.status in ("signed", "superseded")]
    return signed[-1] if signed else None


def ensure_may_cosign(session: Session, user: User, report: Report) -> ReportVersion:
    """The version ``user`` may co-sign now, or the refusal (404/403 from the policy, else 409)."""
    v = _latest_signed(report)
    policy.ensure(user, "report.view", report)
    if v is None or v.status != "signed" or report.versions[-1] is not v:
        raise Conflict("Only the current signed version can be co-signed.", code="report_not_signed")
    policy.ensure(user, "report.cosign", report)
    if v.signed_by_id == user.id:
        raise Conflict("The signer cannot co-sign their own report.", code="cosigner_is_signer")
    if any(s.role == "co-signer" for s in docs.signatures_of(session, v)):
        raise Conflict("This version already has a co-signature.", code="report_already_cosigned")
    return v


def may_cosign(session: Session, user: User, report: Report) -> bool:
    try:
        ensure_may_cosign(session, user, report)
    except DomainError:
        return False
    return True


def allowed_actions(session: Session, user: User, report: Report) -> ReportActions:
    """The buttons the report page and the editor show for ``user``."""
    status = report.versions[-1].status
    return ReportActions(
        edit=status == "draft" and policy.can(user, "report.edit", report),
        sign=status == "draft" and policy.can(user, "report.sign", report),
        cosign=status == "signed" and may_cosign(session, user, report),
        amend=status == "signed" and policy.can(user, "report.amend", report))
