"""Cases, slides, uploads and stored originals."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, Date, Enum, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .accounts import Institution, User
from .base import Base, utcnow


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=24, values_callable=lambda e: [m.value for m in e])


class Priority(str, enum.Enum):
    ROUTINE = "routine"
    URGENT = "urgent"
    FROZEN = "frozen"  # intra-operative frozen section


class Sex(str, enum.Enum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class SlideStatus(str, enum.Enum):
    INSPECTING = "inspecting"
    REJECTED = "rejected"
    TILING = "tiling"
    READY = "ready"
    FAILED = "failed"
    WITHDRAWN = "withdrawn"  # taken off the case before submission; the row stays for the audit trail


class StainCategory(str, enum.Enum):
    """What kind of stain a slide carries; the marker or stain name is free text beside it."""

    HE = "he"                      # haematoxylin and eosin
    IHC = "ihc"                    # immunohistochemistry (marker: Ki-67, CD20…)
    SPECIAL = "special"            # special stain (PAS, Masson…)
    FLUORESCENCE = "fluorescence"  # e.g. FISH, immunofluorescence
    MULTIPLEX = "multiplex"        # multiplex IHC/IF panels


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (UniqueConstraint("institution_id", "case_number", name="uq_cases_institution_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    case_number: Mapped[str] = mapped_column(String(64))
    patient_pseudo_id: Mapped[str] = mapped_column(String(64))
    patient_name: Mapped[str | None] = mapped_column(String(200))
    sex: Mapped[Sex] = mapped_column(_enum(Sex), default=Sex.UNKNOWN)
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    age_years: Mapped[int | None] = mapped_column(Integer)
    clinical_history: Mapped[str] = mapped_column(Text, default="")
    specimen_type: Mapped[str] = mapped_column(String(120), default="")
    specimen_site: Mapped[str] = mapped_column(String(120), default="")
    priority: Mapped[Priority] = mapped_column(_enum(Priority), default=Priority.ROUTINE)
    requesting_clinician_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    institution: Mapped[Institution] = relationship(lazy="joined")
    requesting_clinician: Mapped[User | None] = relationship(foreign_keys=[requesting_clinician_id])
    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])
    slides: Mapped[list["Slide"]] = relationship(back_populates="case", order_by="Slide.id",
                                                 primaryjoin="and_(Slide.case_id == Case.id, Slide.deleted_at.is_(None))",
                                                 viewonly=True)


class StoredOriginal(Base):
    """One original file in object storage, keyed by content: uploaded twice, stored once."""

    __tablename__ = "stored_originals"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Slide(Base):
    __tablename__ = "slides"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    label: Mapped[str] = mapped_column(String(64), default="")
    stain: Mapped[str] = mapped_column(String(64), default="H&E")  # marker / stain name (free text)
    stain_category: Mapped[StainCategory | None] = mapped_column(_enum(StainCategory))  # None: unclassified
    block_label: Mapped[str] = mapped_column(String(32), default="", server_default="")  # block / part, e.g. "A1"
    original_filename: Mapped[str] = mapped_column(String(255), default="")
    original_id: Mapped[int | None] = mapped_column(ForeignKey("stored_originals.id"))
    status: Mapped[SlideStatus] = mapped_column(_enum(SlideStatus), default=SlideStatus.INSPECTING)
    reject_code: Mapped[str | None] = mapped_column(String(48))
    reject_message: Mapped[str | None] = mapped_column(Text)
    reject_params: Mapped[str | None] = mapped_column(Text)  # JSON: what ingest found (bits, channels, format)
    description: Mapped[str] = mapped_column(Text, default="{}")   # JSON SlideDescription
    quality: Mapped[str] = mapped_column(Text, default="{}")       # JSON QualityReport
    pyramid_version: Mapped[int] = mapped_column(Integer, default=0)
    # Set while the slide has only the coarse preview the uploader sent first (domain/slides/preview.py):
    # the highest Deep Zoom level of that preview. None once the full-resolution pyramid replaced it.
    preview_level: Mapped[int | None] = mapped_column(Integer)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[dt.datetime | None]
    # Withdrawal (domain/slide_facts.py): deleted_at is set too, so every listing and count skips the row.
    withdrawn_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    withdraw_reason: Mapped[str | None] = mapped_column(Text)
    purge_after: Mapped[dt.datetime | None]  # its objects are deleted after this (retention period)
    purged_at: Mapped[dt.datetime | None]

    case: Mapped[Case] = relationship(back_populates="slides", lazy="joined")
    original: Mapped[StoredOriginal | None] = relationship(lazy="joined")


class UploadState(str, enum.Enum):
    RECEIVING = "receiving"
    STORING = "storing"  # every byte arrived and was verified; waiting for object storage
    COMPLETE = "complete"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Upload(Base):
    """Bookkeeping of one tus upload: who, for which case, and how it ended."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    stain: Mapped[str] = mapped_column(String(64), default="H&E")
    size: Mapped[int] = mapped_column(BigInteger)
    client_sha256: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[UploadState] = mapped_column(_enum(UploadState), default=UploadState.RECEIVING)
    error_code: Mapped[str | None] = mapped_column(String(48))
    error_message: Mapped[str | None] = mapped_column(Text)
    slide_id: Mapped[int | None] = mapped_column(ForeignKey("slides.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
