"""Consultation reports as the web pages and the JSON API read and drive them.

Each function is one unit of work for one handler (see ``unit_of_work``). Changes commit on
success; a refusal that was audited (``reports.commit_refusal``: a change to a signed version,
a wrong or locked signing password, a stored PDF failing its hash) is committed too, so its
audit entry and the lock-out count survive; any other failure (including object storage being
away) is rolled back, so a signature never exists without its stored PDF. The rules stay in
``domain/reports/`` and ``report_permissions.py``; this module only composes them.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import runtime
from ..models import Case, User
from ..models.consultations import Consultation
from ..models.reports import Report, ReportFigure, ReportSignature, ReportVersion
from . import consultations as consultations_svc
from . import lookup, policy, report_integrity, report_permissions, unit_of_work
from . import report_documents as docs
from . import reports as svc
from .errors import DomainError


@contextmanager
def _change() -> Iterator[Session]:
    session = unit_of_work.current()
    try:
        yield session
    except DomainError as exc:
        if svc.commit_refusal(exc):
            session.commit()
        else:
            session.rollback()
        raise
    except Exception:
        session.rollback()
        raise
    session.commit()


# ---------------------------------------------------------------- reading
@dataclass
class VersionParts:
    """What a version shows besides its own columns: signatures, figures, and (signed) the stored
    PDFs failing their hash check (None for a draft)."""

    signatures: list[ReportSignature]
    figures: list[ReportFigure]
    failed_files: list[str] | None


def version_parts(v: ReportVersion) -> VersionParts:
    session = unit_of_work.current()
    signed = v.status != "draft"
    return VersionParts(docs.signatures_of(session, v) if signed else [], docs.figures_of(session, v),
                        report_integrity.version_problems(docs.files_of(session, v)) if signed else None)


def allowed_actions(user: User, report: Report) -> report_permissions.ReportActions:
    return report_permissions.allowed_actions(unit_of_work.current(), user, report)


@dataclass
class CaseReport:
    """One consultation of a case with its report as the viewer's report panel lists it."""

    consultation: Consultation
    report: Report | None
    can_create: bool


def case_reports(user: User, case: Case) -> list[CaseReport]:
    """The consultations of a case the user sees, each with its visible report and whether the user
    may start one now (in review, none yet, the policy allows)."""
    session = unit_of_work.current()
    out = []
    for c in consultations_svc.for_case(session, user, case):
        report = svc.for_consultation(session, user, c)
        out.append(CaseReport(c, report, report is None and c.state.value == "in_review"
                              and policy.can(user, "report.create", c)))
    return out


def report_for(user: User, c: Consultation) -> Report | None:
    """The consultation's report if the user may see it."""
    return svc.for_consultation(unit_of_work.current(), user, c)


def open_for_consultation(user: User, c: Consultation, *, ip: str | None = None) -> Report | None:
    """The consultation's report, its reading recorded; None when no report is visible yet."""
    with _change() as session:
        report = svc.for_consultation(session, user, c)
        if report is not None:
            svc.record_view(session, user, report, ip=ip)
    return report


def record_view(user: User, report: Report, *, what: str = "report", ip: str | None = None) -> None:
    with _change() as session:
        svc.record_view(session, user, report, what=what, ip=ip)


def integrity_failed(user: User, report: Report | int | None) -> bool:
    """Does a visible signed version's stored PDF fail its hash check? (``report`` may be an id.)"""
    if isinstance(report, int):
        report = lookup.find("report", report)
    if report is None:
        return False
    return bool(report_integrity.report_problems(unit_of_work.current(), svc.visible_versions(user, report)))


def figure_image(user: User, report: Report, figure_id: int) -> bytes:
    """The rendered PNG of one figure of a report the user may read."""
    fig = svc.figure(unit_of_work.current(), user, report, figure_id)
    return runtime.store().get_bytes(fig.image_key)


# ---------------------------------------------------------------- changes
def start(user: User, c: Consultation, *, ip: str | None = None) -> Report:
    with _change() as session:
        return svc.create(session, user, c, ip=ip)


def save_draft(user: User, report: Report, data: dict[str, Any], *, revision: Any, ip: str | None = None) -> None:
    with _change() as session:
        svc.update_draft(session, user, report, data, revision=revision, ip=ip)


def add_figure(user: User, report: Report, data: dict[str, Any], *, ip: str | None = None) -> int:
    """Capture a key view into the draft; returns the new figure's id."""
    with _change() as session:
        return svc.add_figure(session, user, report, data, ip=ip).id


def delete_figure(user: User, report: Report, figure_id: int, *, ip: str | None = None) -> None:
    with _change() as session:
        svc.delete_figure(session, user, report, figure_id, ip=ip)


def sign(user: User, report: Report, *, password: Any, revision: Any, meaning: Any = None,
         ip: str | None = None) -> None:
    with _change() as session:
        svc.sign(session, user, report, password=password, revision=revision, meaning=meaning, ip=ip)


def cosign(user: User, report: Report, *, password: Any, meaning: Any = None, ip: str | None = None) -> None:
    with _change() as session:
        svc.cosign(session, user, report, password=password, meaning=meaning, ip=ip)


def new_version(user: User, report: Report, kind: Any, reason: Any, *, ip: str | None = None) -> None:
    with _change() as session:
        svc.new_version(session, user, report, kind, reason, ip=ip)


# ---------------------------------------------------------------- delivery
def pdf(user: User, report: Report, number: int | None = None, *, original: bool = False,
        ip: str | None = None) -> tuple[bytes, str]:
    """A version's PDF bytes and file name (the download is recorded)."""
    with _change() as session:
        data, name, _v = svc.pdf_of(session, user, report, number, original=original, ip=ip)
    return data, name


def fhir(user: User, report: Report, *, ip: str | None = None, number: int | None = None) -> dict[str, Any]:
    with _change() as session:
        return svc.fhir(session, user, report, ip=ip, number=number)


def imaging_study(user: User, report: Report, *, ip: str | None = None) -> dict[str, Any]:
    """The case's FHIR ImagingStudy (slides as DICOM series, the DICOMweb Endpoint)."""
    with _change() as session:
        return svc.imaging_study(session, user, report, ip=ip)


@dataclass
class Verification:
    """The public answer for a code (None: unknown) and, for a superseded version, when it was superseded."""

    result: dict[str, Any] | None
    superseded_at: dt.datetime | None = None


def verify(code: str) -> Verification:
    """The public verification of a printed code; reads only and leaves nothing in the session."""
    session = unit_of_work.current()
    try:
        result = svc.verify(session, code)
        when = None
        if result and result.get("superseded"):
            when = session.scalar(select(ReportVersion.superseded_at)
                                  .where(ReportVersion.verification_code == result["code"]))
        return Verification(result, when)
    finally:
        session.rollback()
