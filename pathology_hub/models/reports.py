"""Consultation reports: one report per consultation, made of numbered versions.

A version is a draft until signed; after signing its row is frozen (the domain layer
refuses changes and the signed PDF's SHA-256 is kept).  Later changes are new
versions (addendum or amendment) and the older one is marked superseded.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .accounts import User
from .base import Base, utcnow
from .consultations import Consultation


class Report(Base):
    """The report of one consultation request; its content lives in :class:`ReportVersion`."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id"), unique=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    consultation: Mapped[Consultation] = relationship(lazy="joined")
    versions: Mapped[list["ReportVersion"]] = relationship(back_populates="report", order_by="ReportVersion.number")


class ReportVersion(Base):
    """One version: ``status`` is draft → signed → superseded; ``revision`` guards concurrent edits."""

    __tablename__ = "report_versions"
    __table_args__ = (UniqueConstraint("report_id", "number", name="uq_report_versions_report_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    number: Mapped[int] = mapped_column(Integer, default=1)
    kind: Mapped[str] = mapped_column(String(16), default="original")   # original | addendum | amendment
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)  # draft | signed | superseded
    revision: Mapped[int] = mapped_column(Integer, default=1)
    specimen: Mapped[str] = mapped_column(Text, default="")
    gross_description: Mapped[str] = mapped_column(Text, default="")
    microscopic_description: Mapped[str] = mapped_column(Text, default="")
    diagnosis: Mapped[str] = mapped_column(Text, default="")
    diagnosis_code: Mapped[str] = mapped_column(String(32), default="")
    diagnosis_code_system: Mapped[str] = mapped_column(String(32), default="")
    diagnosis_code_display: Mapped[str] = mapped_column(String(200), default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    recommendations: Mapped[str] = mapped_column(Text, default="")
    answer_to_question: Mapped[str] = mapped_column(Text, default="")
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    signed_at: Mapped[dt.datetime | None]
    signed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    superseded_at: Mapped[dt.datetime | None]
    superseded_by_number: Mapped[int | None] = mapped_column(Integer)
    verification_code: Mapped[str | None] = mapped_column(String(40), unique=True)

    report: Mapped[Report] = relationship(back_populates="versions")
    author: Mapped[User] = relationship(foreign_keys=[author_id])
    signed_by: Mapped[User | None] = relationship(foreign_keys=[signed_by_id])


class ReportSignature(Base):
    """The signature manifest of a version: the signer and any co-signer, as they were at signing."""

    __tablename__ = "report_signatures"
    __table_args__ = (UniqueConstraint("version_id", "role", name="uq_report_signatures_version_role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("report_versions.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    role: Mapped[str] = mapped_column(String(16), default="signer")  # signer | co-signer
    full_name: Mapped[str] = mapped_column(String(200))
    institution: Mapped[str] = mapped_column(String(200))
    meaning: Mapped[str] = mapped_column(String(200))
    signed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")


class ReportFile(Base):
    """A signed PDF of a version kept in object storage: the original, a co-signed or a superseded copy.

    The newest file of a version is what is served; every file keeps its SHA-256 for verification.
    """

    __tablename__ = "report_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("report_versions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # original | cosigned | superseded
    storage_key: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReportFigure(Base):
    """A key view: a PNG rendered from the pyramid with annotations, a caption and a link back to the view."""

    __tablename__ = "report_figures"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("report_versions.id"), index=True)
    slide_id: Mapped[int] = mapped_column(ForeignKey("slides.id"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    caption: Mapped[str] = mapped_column(Text, default="")
    view_link: Mapped[str] = mapped_column(Text, default="")
    bounds: Mapped[str] = mapped_column(Text, default="[]")  # JSON [x0, y0, x1, y1] level-0 px
    rotation: Mapped[float] = mapped_column(default=0.0)
    magnification: Mapped[str] = mapped_column(String(32), default="")
    image_key: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ResultAcknowledgement(Base):
    """A clinician's explicit "I have read this result" for one signed report version.

    It belongs to the version, not to the request: signing an amendment or addendum puts a
    new version in force, which no acknowledgement covers yet, so the result asks for it again.
    ``consultation_id`` is the referral the clinician acknowledged (the root of an escalation chain).
    """

    __tablename__ = "result_acknowledgements"
    __table_args__ = (UniqueConstraint("consultation_id", "version_id",
                                       name="uq_result_acknowledgements_consultation_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("report_versions.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    version: Mapped[ReportVersion] = relationship()
    user: Mapped[User] = relationship()
