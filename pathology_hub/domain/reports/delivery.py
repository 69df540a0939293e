"""Delivery: the signed PDF and the HL7 FHIR DiagnosticReport of a report.

Both read the stored PDF through its integrity check and are audited; reading never
acknowledges a result.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from pathology_hub.domain import audit, report_integrity
from pathology_hub.domain import report_documents as docs
from pathology_hub.domain.errors import Conflict, NotFound
from pathology_hub.domain.reports.reading import latest_signed, version_by_number, visible_versions
from pathology_hub.models import User
from pathology_hub.models.reports import Report, ReportVersion


def pdf_of(session: Session, user: User, report: Report, number: int | None = None, *, original: bool = False,
           ip: str | None = None, now: dt.datetime | None = None) -> tuple[bytes, str, ReportVersion]:
    """The signed PDF to hand out (the superseded copy for an old version, unless ``original``).

    Downloading is reading: it is audited and never acknowledges the result.
    """
    if number is None:
        v = latest_signed(report)
        if v is None or v not in visible_versions(user, report):
            raise NotFound("This report has no signed version yet.", code="report_not_signed")
    else:
        v = version_by_number(user, report, number)
        if v.status == "draft":
            raise Conflict("A draft has no signed PDF.", code="report_not_signed")
    files = docs.files_of(session, v)
    chosen = next((f for f in files if f.kind == "original"), None) if original else (files[-1] if files else None)
    if chosen is None:
        raise NotFound("The signed PDF of this version is missing.", code="pdf_missing")
    data = report_integrity.read_verified(session, chosen, report, v, actor=user, purpose="pdf", ip=ip)
    audit.record(session, "report.downloaded", actor=user, object_type="report", object_id=report.id,
                 case_id=report.case_id, ip=ip, details={"version": v.number, "file": chosen.kind,
                                                         "sha256": chosen.sha256})
    name = f"report-{report.consultation.case.case_number}-v{v.number}{'-original' if original else ''}.pdf"
    return data, name, v


FHIR_STATUS = {"original": "final", "amendment": "amended", "addendum": "appended"}


def fhir(session: Session, user: User, report: Report, *, ip: str | None = None) -> dict[str, Any]:
    """The latest signed version as an HL7 FHIR R4 DiagnosticReport with the PDF as presentedForm."""
    from pathology_hub.reporting.fhir import diagnostic_report
    v = latest_signed(report)
    if v is None or v not in visible_versions(user, report):
        raise NotFound("This report has no signed version yet.", code="report_not_signed")
    f = docs.served_file(session, v)
    if f is None:
        raise NotFound("The signed PDF of this version is missing.", code="pdf_missing")
    sigs = [docs.signature_of(s) for s in docs.signatures_of(session, v)]
    doc = docs.build_document(session, v, signatures=sigs, verification_code=v.verification_code or "")
    pdf = report_integrity.read_verified(session, f, report, v, actor=user, purpose="fhir", ip=ip)
    statuses = [FHIR_STATUS[x.kind] for x in report.versions if x.status in ("signed", "superseded")]
    status = "final" if len(statuses) == 1 else FHIR_STATUS[v.kind]
    resource = diagnostic_report(doc, report_id=report.id, status=status, pdf=pdf,
                                 pdf_url=docs.view_url(f"/api/v1/reports/{report.id}/versions/{v.number}/pdf"),
                                 issued=docs.local_time(v.signed_at))
    audit.record(session, "report.fhir_exported", actor=user, object_type="report", object_id=report.id,
                 case_id=report.case_id, ip=ip, details={"version": v.number, "status": status})
    return resource
