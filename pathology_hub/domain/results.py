"""The result of a consultation, read from the signed report versions and nothing else.

Why this module exists: pages used to show a copied ``opinion`` column that was written once
when the first version was signed and never again, so an amendment left the referring centre
reading a superseded diagnosis, under the wrong pathologist's name.  Every page, worklist,
notification, e-mail and API that shows an opinion or a diagnosis now asks
:func:`result_in_force`, which derives it from ``report_versions``:

* the version in force is the latest signed one (status ``signed``); older signed versions are
  ``superseded`` and are listed with their signing and superseding dates;
* each version is attributed to the pathologist who signed it and the institution where they
  work, as recorded in the signature manifest at signing;
* the report that answers a request is its own, or for an escalated request the report of the
  escalation below it (the expert's); the district pathologist's preliminary opinion stays a
  separate statement attributed to the district (:func:`preliminary_opinions`);
* an acknowledgement belongs to one version (:class:`Acknowledgement`); one of an older version
  does not count for the version in force.

Reading never changes anything: no function here writes to the session.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import User, as_utc
from ..models.consultations import Consultation
from ..models.reports import Report, ReportSignature, ReportVersion, ResultAcknowledgement

SIGNED_STATUSES = ("signed", "superseded")


@dataclass(frozen=True)
class SignedVersion:
    """One signed version of the answering report, as signed."""

    consultation_id: int
    report_id: int
    number: int
    kind: str                   # original | addendum | amendment
    status: str                 # signed (in force) | superseded
    reason: str                 # why an addendum or amendment was written
    diagnosis: str
    diagnosis_code: str
    diagnosis_code_system: str
    diagnosis_code_display: str
    answer_to_question: str
    recommendations: str
    comment: str
    signer: str                 # full name in the signature manifest
    signer_id: int | None
    institution: str            # where the signer works (manifest), e.g. the university hospital
    institution_code: str
    signed_at: dt.datetime
    superseded_at: dt.datetime | None
    superseded_by: int | None
    verification_code: str

    @property
    def superseded(self) -> bool:
        return self.status == "superseded"

    def as_json(self) -> dict[str, Any]:
        return {"consultation_id": self.consultation_id, "report_id": self.report_id, "version": self.number,
                "kind": self.kind, "status": self.status, "reason": self.reason, "diagnosis": self.diagnosis,
                "diagnosis_code": self.diagnosis_code, "diagnosis_code_system": self.diagnosis_code_system,
                "diagnosis_code_display": self.diagnosis_code_display,
                "answer_to_question": self.answer_to_question, "recommendations": self.recommendations,
                "comment": self.comment,
                "signed_by": {"id": self.signer_id, "full_name": self.signer, "institution": self.institution,
                              "institution_code": self.institution_code},
                "signed_at": _iso(self.signed_at), "superseded_at": _iso(self.superseded_at),
                "superseded_by": self.superseded_by, "verification_code": self.verification_code}


@dataclass(frozen=True)
class Acknowledgement:
    """"I have read this result", by one person for one version."""

    version: int
    version_id: int
    user_id: int
    by: str
    at: dt.datetime

    def as_json(self) -> dict[str, Any]:
        return {"version": self.version, "user_id": self.user_id, "by": self.by, "at": _iso(self.at)}


@dataclass(frozen=True)
class Preliminary:
    """The district pathologist's preliminary opinion sent with an escalation: theirs, not a result."""

    consultation_id: int        # the escalation (child) request that carried it
    text: str
    author: str
    author_id: int
    institution: str
    institution_code: str
    at: dt.datetime

    def as_json(self) -> dict[str, Any]:
        return {"consultation_id": self.consultation_id, "text": self.text,
                "by": {"id": self.author_id, "full_name": self.author, "institution": self.institution,
                       "institution_code": self.institution_code}, "at": _iso(self.at)}


@dataclass(frozen=True)
class Result:
    """What a request's result is now: the version in force, its history and its acknowledgements."""

    report_id: int
    consultation_id: int        # the request whose report answers (the expert's child for an escalation)
    versions: tuple[SignedVersion, ...]          # newest first; ``versions[0]`` is in force
    in_force_version_id: int                     # ``report_versions.id`` of ``versions[0]``
    acknowledgements: tuple[Acknowledgement, ...] = field(default=())  # newest first, every version

    @property
    def in_force(self) -> SignedVersion:
        return self.versions[0]

    @property
    def superseded(self) -> tuple[SignedVersion, ...]:
        return self.versions[1:]

    @property
    def amended(self) -> bool:
        """A later version (amendment or addendum) replaced the first signed one."""
        return len(self.versions) > 1

    @property
    def acknowledgement(self) -> Acknowledgement | None:
        """The acknowledgement of the version in force (older versions' ones do not count)."""
        return next((a for a in self.acknowledgements if a.version_id == self.in_force_version_id), None)

    def as_json(self) -> dict[str, Any]:
        ack = self.acknowledgement
        return {"report_id": self.report_id, "consultation_id": self.consultation_id,
                "in_force": self.in_force.as_json(), "amended": self.amended,
                "superseded": [v.as_json() for v in self.superseded],
                "acknowledged": ack is not None, "acknowledgement": ack.as_json() if ack else None,
                "acknowledgements": [a.as_json() for a in self.acknowledgements]}


def _iso(value: dt.datetime | None) -> str | None:
    return as_utc(value).isoformat() if value is not None else None


# ---------------------------------------------------------------- the chain
def root_of(c: Consultation) -> Consultation:
    """The referral the centre made (an escalation's parents up to the top)."""
    while c.parent is not None:
        c = c.parent
    return c


def _children(session: Session, c: Consultation) -> list[Consultation]:
    return list(session.scalars(select(Consultation).where(Consultation.parent_id == c.id).order_by(Consultation.id)))


def answering_report(session: Session, c: Consultation) -> Report | None:
    """The report with a signed version that answers ``c``: its own, else its escalation's (breadth first)."""
    frontier = [c]
    while frontier:
        item = frontier.pop(0)
        report = session.scalar(select(Report).where(Report.consultation_id == item.id))
        if report is not None and any(v.status in SIGNED_STATUSES for v in report.versions):
            return report
        frontier.extend(_children(session, item))
    return None


def _signed_version(session: Session, report: Report, v: ReportVersion) -> SignedVersion:
    sig = session.scalar(select(ReportSignature).where(ReportSignature.version_id == v.id,
                                                       ReportSignature.role == "signer"))
    signer: User | None = v.signed_by
    return SignedVersion(
        consultation_id=report.consultation_id, report_id=report.id, number=v.number, kind=v.kind, status=v.status,
        reason=v.reason, diagnosis=v.diagnosis, diagnosis_code=v.diagnosis_code,
        diagnosis_code_system=v.diagnosis_code_system, diagnosis_code_display=v.diagnosis_code_display,
        answer_to_question=v.answer_to_question, recommendations=v.recommendations, comment=v.comment,
        signer=sig.full_name if sig else (signer.full_name if signer else ""),
        signer_id=v.signed_by_id,
        institution=sig.institution if sig else (signer.institution.name if signer else ""),
        institution_code=signer.institution.code if signer else "",
        signed_at=v.signed_at, superseded_at=v.superseded_at, superseded_by=v.superseded_by_number,
        verification_code=v.verification_code or "")


def result_in_force(session: Session, c: Consultation) -> Result | None:
    """The result of ``c`` (any request of a chain), or ``None`` while no version is signed."""
    report = answering_report(session, c)
    if report is None:
        return None
    signed = sorted((v for v in report.versions if v.status in SIGNED_STATUSES), key=lambda v: v.number,
                    reverse=True)
    # The latest signed version is in force even if a status flip were ever missed.
    versions = tuple(_signed_version(session, report, v) for v in signed)
    by_id = {v.id: v for v in signed}
    rows = session.scalars(select(ResultAcknowledgement).where(
        ResultAcknowledgement.consultation_id == root_of(c).id,
        ResultAcknowledgement.version_id.in_(list(by_id))).order_by(ResultAcknowledgement.at.desc(),
                                                                    ResultAcknowledgement.id.desc()))
    acks = tuple(Acknowledgement(version=by_id[a.version_id].number, version_id=a.version_id, user_id=a.user_id,
                                 by=a.user.full_name if a.user else "", at=a.at) for a in rows)
    return Result(report_id=report.id, consultation_id=report.consultation_id, versions=versions,
                  in_force_version_id=signed[0].id, acknowledgements=acks)


def version_in_force(session: Session, c: Consultation) -> ReportVersion | None:
    """The ``ReportVersion`` row in force for ``c`` (for writing an acknowledgement)."""
    report = answering_report(session, c)
    if report is None:
        return None
    signed = [v for v in report.versions if v.status in SIGNED_STATUSES]
    return max(signed, key=lambda v: v.number) if signed else None


def preliminary_opinions(session: Session, c: Consultation) -> list[Preliminary]:
    """Preliminary opinions along the chain at and below ``c``, each attributed to the district that wrote it.

    The opinion is stored once, on the escalation request that carried it upwards; its author is
    the pathologist who escalated and its institution the one that asked (the district hospital).
    """
    out: list[Preliminary] = []
    frontier = [c]
    while frontier:
        item = frontier.pop(0)
        if item.parent_id is not None and item.preliminary_opinion:
            author = item.created_by
            inst = item.requesting_institution
            out.append(Preliminary(consultation_id=item.id, text=item.preliminary_opinion,
                                   author=author.full_name if author else "", author_id=item.created_by_id,
                                   institution=inst.name if inst else "", institution_code=inst.code if inst else "",
                                   at=item.created_at))
        frontier.extend(_children(session, item))
    return out
