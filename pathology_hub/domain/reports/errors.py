"""The refusals a report operation can answer with, and which of them the web layer must commit.

They live apart from the operations because the web layer maps every one of them to a stable
error ``code`` and needs them without importing signing or drafting.
"""

from __future__ import annotations

from pathology_hub.domain import report_integrity
from pathology_hub.domain.errors import AuthenticationFailed, Conflict, DomainError
from pathology_hub.domain.reports.reading import version_json_fields
from pathology_hub.models.reports import ReportVersion


class ReportSigned(Conflict):
    """A change to a signed version; the refusal itself has been added to the session's audit trail."""

    code = "report_signed"


ReportIntegrityFailed = report_integrity.ReportIntegrityFailed


class ReportVersionConflict(Conflict):
    code = "report_version_conflict"

    def __init__(self, version: ReportVersion) -> None:
        super().__init__("The report was changed elsewhere (now revision %(revision)s); your change was "
                         "not saved. Reload the report and apply your change again.",
                         details={"revision": version.revision, "version": version.number,
                                  "status": version.status, "current": version_json_fields(version)})


class WrongPassword(AuthenticationFailed):
    """Signing needs the signer's own password again; the failed attempt is audited."""

    code = "invalid_password"


class SignerLocked(AuthenticationFailed):
    """Too many wrong passwords (at login or when signing): the account may not sign until the lock ends.

    Same code as the login refusal, so clients need one message for both."""

    code = "account_locked"


def commit_refusal(exc: DomainError) -> bool:
    """Whether the web layer must commit (the audit entry of) this refusal before answering."""
    return isinstance(exc, (ReportSigned, WrongPassword, SignerLocked, report_integrity.ReportIntegrityFailed))
