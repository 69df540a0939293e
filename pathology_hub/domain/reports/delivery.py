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
from pathology_hub.models import SlideStatus, User
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


def _signed(report: Report) -> list[ReportVersion]:
    return [x for x in report.versions if x.status in ("signed", "superseded")]


def fhir_url(report: Report, number: int | None = None) -> str:
    """The absolute URL that answers with this report's DiagnosticReport (a given version with ``number``)."""
    path = f"/api/v1/reports/{report.id}/fhir" + (f"/_history/{number}" if number is not None else "")
    return docs.view_url(path)


def imaging_study_url(report: Report) -> str:
    return docs.view_url(f"/api/v1/reports/{report.id}/fhir/ImagingStudy")


def _study_uid(report: Report) -> str:
    from pathology_hub.domain.dicom import uids
    case = report.consultation.case
    return uids.study_uid(case.id, case.created_at)


def _visible_signed(user: User, report: Report, number: int | None) -> ReportVersion:
    """The latest signed version, or the signed version ``number``, that ``user`` may read."""
    if number is None:
        v = latest_signed(report)
        if v is None or v not in visible_versions(user, report):
            raise NotFound("This report has no signed version yet.", code="report_not_signed")
        return v
    v = version_by_number(user, report, number)
    if v.status not in ("signed", "superseded"):
        raise NotFound("This report has no signed version yet.", code="report_not_signed")
    return v


def fhir(session: Session, user: User, report: Report, *, ip: str | None = None,
         number: int | None = None) -> dict[str, Any]:
    """A signed version (the latest unless ``number``) as an HL7 FHIR R4 DiagnosticReport with the PDF as
    presentedForm, the case's ImagingStudy in ``imagingStudy`` and, for an amendment or addendum, the
    version it amends linked by its versioned URL (see :mod:`pathology_hub.reporting.fhir`)."""
    from pathology_hub.reporting.fhir import diagnostic_report
    v = _visible_signed(user, report, number)
    f = docs.served_file(session, v)
    if f is None:
        raise NotFound("The signed PDF of this version is missing.", code="pdf_missing")
    sigs = [docs.signature_of(s) for s in docs.signatures_of(session, v)]
    doc = docs.build_document(session, v, signatures=sigs, verification_code=v.verification_code or "")
    pdf = report_integrity.read_verified(session, f, report, v, actor=user, purpose="fhir", ip=ip)
    signed = _signed(report)
    earlier = [x for x in signed if x.number < v.number]
    status = "final" if not earlier else FHIR_STATUS[v.kind]
    previous = None
    if earlier:
        prev = earlier[-1]
        previous = {"reference": fhir_url(report, prev.number), "type": "DiagnosticReport",
                    "display": f"{doc.case_number} report version {prev.number}".strip()}
    study = {"reference": imaging_study_url(report), "type": "ImagingStudy",
             "identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{_study_uid(report)}"},
             "display": f"Whole slide images of case {doc.case_number}".strip()}
    resource = diagnostic_report(doc, report_id=report.id, status=status, pdf=pdf,
                                 pdf_url=docs.view_url(f"/api/v1/reports/{report.id}/versions/{v.number}/pdf"),
                                 issued=docs.local_time(v.signed_at), imaging_study=study, previous=previous,
                                 previous_kind=v.kind)
    audit.record(session, "report.fhir_exported", actor=user, object_type="report", object_id=report.id,
                 case_id=report.case_id, ip=ip, details={"version": v.number, "status": status})
    return resource


def imaging_study(session: Session, user: User, report: Report, *, ip: str | None = None) -> dict[str, Any]:
    """The FHIR R4 ImagingStudy of the report's case: who may read the signed report may read it.

    One series per slide that has a pyramid (ready, not withdrawn or deleted), with the DICOM UIDs of
    :mod:`pathology_hub.domain.dicom.uids` that the DICOMweb service answers to, and the DICOMweb
    Endpoint at ``BASE_URL`` + ``/dicomweb``. Image instances are not listed (DICOMweb lists them); a
    slide's annotations, when it has any the reader may see, are one more series (modality ANN) with
    their one Bulk Simple Annotations instance."""
    from pathology_hub.domain import policy
    from pathology_hub.domain.dicom import annotations as dicom_annotations
    from pathology_hub.domain.dicom import annotations_service, uids
    from pathology_hub.reporting.fhir import imaging_study as build
    _visible_signed(user, report, None)
    case = report.consultation.case
    series: list[dict[str, Any]] = []
    for slide in (s for s in case.slides if s.deleted_at is None and s.status == SlideStatus.READY):
        label = " ".join(p for p in (slide.block_label, slide.label, slide.stain) if p) or f"Slide {len(series) + 1}"
        series.append({"uid": uids.slide_series_uid(slide.uid, slide.pyramid_version), "number": len(series) + 1,
                       "description": label})
        ann_uid = annotations_service.current_instance_uid(session, slide) \
            if policy.can(user, "annotation.view", slide) else None
        if ann_uid is not None:
            series.append({"uid": uids.annotation_series_uid(slide.uid, slide.pyramid_version),
                           "number": len(series) + 1, "modality": "ANN", "description": f"Annotations of {label}",
                           "instances": [{"uid": ann_uid, "number": 1,
                                          "sop_class": dicom_annotations.ANN_SOP_CLASS_UID}]})
    resource = build(resource_id=f"case-{case.id}", study_uid=uids.study_uid(case.id, case.created_at),
                     patient_id=case.patient_pseudo_id or f"case-{case.id}", case_number=case.case_number or "",
                     started=docs.local_time(case.created_at), series=series,
                     dicomweb_url=docs.view_url("/dicomweb"))
    audit.record(session, "report.fhir_exported", actor=user, object_type="report", object_id=report.id,
                 case_id=report.case_id, ip=ip, details={"resource": "ImagingStudy", "series": len(series)})
    return resource
