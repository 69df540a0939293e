"""Turning stored report versions into what gets printed, signed and verified.

Kept apart from the editing workflow (``reports.py``) because it is the only part
that touches the PDF renderer, the signing key and object storage: a version's PDF
is a pure function of the :class:`ReportDocument` built here, so re-rendering an old
version (for its "superseded" copy) can never pick up later edits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import runtime
from ..models import User, as_utc
from ..models.consultations import Consultation
from ..models.reports import Report, ReportFigure, ReportFile, ReportSignature, ReportVersion
from ..reporting.document import Figure, ReportDocument, Signature, SlideEntry, VersionEntry
from . import turnaround

_identity_lock = threading.Lock()
_identity_cache: dict[tuple, object] = {}


def signing_identity():
    """The deployment's signing key and certificate (created on first use when none is configured)."""
    from ..reporting.signing import load_or_create_identity
    s = runtime.settings()
    key = (str(s.instance_path), s.report_signing_key or None, s.report_signing_cert or None)
    with _identity_lock:
        if key not in _identity_cache:
            _identity_cache[key] = load_or_create_identity(*key)
        return _identity_cache[key]


def local_time(value: dt.datetime | None) -> dt.datetime | None:
    """Times on reports are printed in the network's time zone (``TURNAROUND_TIMEZONE``)."""
    return as_utc(value).astimezone(turnaround.timezone()) if value is not None else None


def _outside_event_loop(fn, *args, **kwargs):
    """Run ``fn`` in a helper thread when this thread already runs an asyncio loop.

    pyHanko's synchronous signing and validation call ``asyncio.run``, which fails inside a
    running loop (an async server, or Playwright's sync API in the same test process).
    """
    import asyncio
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn(*args, **kwargs)
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def verification_url(code: str) -> str:
    return f"{runtime.settings().base_url}/verify/{code}"


def view_url(path: str) -> str:
    """Absolute link for the PDF (figures link back to the viewer)."""
    if path.startswith("http://") or path.startswith("https://"):
        return path
    return f"{runtime.settings().base_url}{path if path.startswith('/') else '/' + path}"


def signatures_of(session: Session, version: ReportVersion) -> list[ReportSignature]:
    return list(session.scalars(select(ReportSignature).where(ReportSignature.version_id == version.id)
                                .order_by(ReportSignature.id)))


def figures_of(session: Session, version: ReportVersion) -> list[ReportFigure]:
    return list(session.scalars(select(ReportFigure).where(ReportFigure.version_id == version.id)
                                .order_by(ReportFigure.position, ReportFigure.id)))


def files_of(session: Session, version: ReportVersion) -> list[ReportFile]:
    return list(session.scalars(select(ReportFile).where(ReportFile.version_id == version.id)
                                .order_by(ReportFile.id)))


def served_file(session: Session, version: ReportVersion) -> ReportFile | None:
    """The newest signed PDF of a version (superseded copy > co-signed > original)."""
    files = files_of(session, version)
    return files[-1] if files else None


def signature_of(sig: ReportSignature) -> Signature:
    return Signature(full_name=sig.full_name, institution=sig.institution, signed_at=local_time(sig.signed_at),
                     meaning=sig.meaning, role=sig.role)


def _history(report: Report, upto: ReportVersion, extra: dict[int, dict] | None = None) -> tuple[VersionEntry, ...]:
    out = []
    for v in report.versions:
        if v.number > upto.number and v.status == "draft":
            continue
        info = (extra or {}).get(v.id, {})
        signer = info.get("signer") or (v.signed_by.full_name if v.signed_by else "")
        out.append(VersionEntry(number=v.number, kind=v.kind, signed_at=local_time(info.get("signed_at") or v.signed_at),
                                signer=signer, reason=v.reason,
                                superseded=bool(info.get("superseded", v.status == "superseded"))))
    return tuple(out)


def _age(consultation: Consultation) -> str:
    case = consultation.case
    if case.age_years is not None:
        return str(case.age_years)
    return ""


def build_document(session: Session, version: ReportVersion, *, signatures: list[Signature],
                   signed_at: dt.datetime | None = None, signer: User | None = None,
                   verification_code: str = "", superseded_by: int | None = None,
                   history_overrides: dict[int, dict] | None = None, language: str | None = None) -> ReportDocument:
    """The snapshot printed on one version; ``signatures`` are the manifest rows at render time.

    The PDF's language is the referring institution's setting (:func:`report_language`);
    ``language`` overrides it (tests, re-renders in a chosen language)."""
    report = version.report
    c = report.consultation
    case = c.case
    signing_inst = c.receiving_institution or (signer.institution if signer else None)
    preliminary, preliminary_by = "", ""
    if c.parent is not None and c.preliminary_opinion:
        # the district's own statement, attributed to the pathologist who escalated and their hospital
        preliminary = c.preliminary_opinion
        preliminary_by = f"{c.created_by.full_name} ({c.requesting_institution.name})"
    figures = []
    store = runtime.store()
    for f in figures_of(session, version):
        figures.append(Figure(image=store.get_bytes(f.image_key), caption=f.caption, view_link=view_url(f.view_link),
                              slide_label=_slide_label(f), magnification=f.magnification))
    overrides = dict(history_overrides or {})
    if signed_at is not None:
        overrides.setdefault(version.id, {}).update({"signed_at": signed_at,
                                                     "signer": signer.full_name if signer else ""})
    return ReportDocument(
        institution_name=signing_inst.name if signing_inst else "",
        case_number=case.case_number, patient_id=case.patient_pseudo_id, patient_name="",
        sex=case.sex.value if case.sex is not None and case.sex.value != "unknown" else "",
        age=_age(c), requesting_institution=case.institution.name,
        requesting_clinician=case.requesting_clinician.full_name if case.requesting_clinician else "",
        specimen_type=case.specimen_type, specimen_site=case.specimen_site,
        clinical_history=case.clinical_history, clinical_question=c.question, priority=c.priority.value,
        specimen=version.specimen, gross_description=version.gross_description,
        microscopic_description=version.microscopic_description, diagnosis=version.diagnosis,
        diagnosis_code=version.diagnosis_code, diagnosis_code_system=version.diagnosis_code_system,
        diagnosis_code_display=version.diagnosis_code_display, comment=version.comment,
        recommendations=version.recommendations, answer_to_question=version.answer_to_question,
        preliminary_opinion=preliminary, preliminary_opinion_by=preliminary_by,
        figures=tuple(figures), slides=slide_entries(case), version=version.number, version_kind=version.kind,
        amendment_reason=version.reason, signatures=tuple(signatures),
        history=_history(report, version, overrides), superseded_by=superseded_by,
        verification_code=verification_code,
        verification_url=verification_url(verification_code) if verification_code else "",
        language=language or report_language(c),
    )


def report_language(consultation: Consultation) -> str:
    """The language a consultation's report is printed in: that of the institution that
    referred the case (its ``report_language`` setting, Chinese by default)."""
    referring = consultation.case.institution if consultation.case is not None else None
    return (getattr(referring, "report_language", None) or "zh") if referring is not None else "zh"


def slide_entries(case) -> tuple[SlideEntry, ...]:
    """The case's viewable slides with their stain and block, as printed in the PDF and sent in FHIR."""
    from ..models import SlideStatus
    from .slide_facts import category_of, stain_name
    out = []
    for s in case.slides:
        if s.status is not SlideStatus.READY:
            continue
        cat = category_of(s)
        out.append(SlideEntry(label=s.label, block_label=s.block_label or "", stain_category=cat.value if cat else "",
                              stain_name=stain_name(s), uid=s.uid))
    return tuple(out)


def _slide_label(f: ReportFigure) -> str:
    from sqlalchemy.orm import object_session

    from ..models import Slide
    session = object_session(f)
    slide = session.get(Slide, f.slide_id) if session is not None else None
    return " ".join(p for p in (slide.label, slide.block_label, slide.stain) if p) if slide is not None else ""


@dataclass(frozen=True)
class SignedPdf:
    data: bytes
    sha256: str


def render_and_sign(doc: ReportDocument, *, signer_name: str, reason: str, location: str) -> SignedPdf:
    """Render the document and apply the deployment's PAdES signature."""
    from ..reporting.pdf import render_report_pdf
    from ..reporting.signing import sign_pdf
    pdf = _outside_event_loop(sign_pdf, render_report_pdf(doc), signing_identity(), signer_name=signer_name,
                              reason=reason, location=location)
    return SignedPdf(pdf, hashlib.sha256(pdf).hexdigest())


def store_file(session: Session, version: ReportVersion, kind: str, pdf: SignedPdf, *, now: dt.datetime) -> ReportFile:
    key = f"reports/{version.report_id}/v{version.number}/{kind}-{pdf.sha256[:16]}.pdf"
    runtime.store().put_bytes(key, pdf.data, content_type="application/pdf")
    row = ReportFile(version_id=version.id, kind=kind, storage_key=key, sha256=pdf.sha256, size=len(pdf.data),
                     created_at=now)
    session.add(row)
    return row


@dataclass(frozen=True)
class FileCheck:
    kind: str
    hash_ok: bool
    intact: bool
    valid: bool
    summary: str

    @property
    def ok(self) -> bool:
        return self.hash_ok and self.intact and self.valid


def check_file(f: ReportFile) -> FileCheck:
    """Re-read a stored PDF: does it still hash to the recorded SHA-256 and does its PAdES signature hold?"""
    from storage.errors import StorageError
    from ..reporting.signing import validate_pdf
    try:
        data = runtime.store().get_bytes(f.storage_key)
    except StorageError as exc:
        return FileCheck(f.kind, False, False, False, f"stored PDF unreadable: {exc.code}")
    hash_ok = hashlib.sha256(data).hexdigest() == f.sha256
    result = _outside_event_loop(validate_pdf, data, signing_identity())
    return FileCheck(f.kind, hash_ok, bool(result.intact), bool(result.valid), result.summary)
