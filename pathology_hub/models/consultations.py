"""Consultation requests along the referral chain, their history and in-app notifications.

The allowed states and transitions live in :mod:`pathology_hub.domain.consultations`;
these tables only store where a request is and how it got there.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Enum, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .accounts import Institution, User
from .base import Base, utcnow
from .cases import Case, Priority


class ConsultationState(str, enum.Enum):
    DRAFT = "draft"
    TRIAGE = "triage"
    ASSIGNED = "assigned"
    IN_REVIEW = "in_review"
    INFO_REQUESTED = "info_requested"
    ESCALATED = "escalated"
    REPORTED = "reported"
    RETURNED = "returned"
    ACKNOWLEDGED = "acknowledged"
    CANCELLED = "cancelled"


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=24, values_callable=lambda e: [m.value for m in e])


class Consultation(Base):
    """One request for an opinion on a case; an escalation is a child request (``parent_id``)."""

    __tablename__ = "consultations"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("consultations.id"), index=True)
    state: Mapped[ConsultationState] = mapped_column(_enum(ConsultationState), default=ConsultationState.DRAFT,
                                                     index=True)
    priority: Mapped[Priority] = mapped_column(_enum(Priority), default=Priority.ROUTINE)
    requesting_institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    receiving_institution_id: Mapped[int | None] = mapped_column(ForeignKey("institutions.id"), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    requested_expert_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    subspecialty: Mapped[str] = mapped_column(String(64), default="")
    question: Mapped[str] = mapped_column(Text, default="")
    #: On an escalation (child) request: the district pathologist's own preliminary opinion, sent
    #: upwards with it.  Never a result: results live only in the signed report versions
    #: (:mod:`pathology_hub.domain.results`).
    preliminary_opinion: Mapped[str] = mapped_column(Text, default="")
    #: Advice typed by the pathologist who returned the result by hand; the signed report's
    #: recommendations are read from the report, never copied here.
    follow_up_advice: Mapped[str] = mapped_column(Text, default="")
    cancel_reason: Mapped[str] = mapped_column(Text, default="")
    #: JSON list of [start, end] ISO pairs while waiting on the centre (end null while open).
    paused_intervals: Mapped[str] = mapped_column(Text, default="[]")
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    submitted_at: Mapped[dt.datetime | None]
    assigned_at: Mapped[dt.datetime | None]
    accepted_at: Mapped[dt.datetime | None]
    reported_at: Mapped[dt.datetime | None]
    returned_at: Mapped[dt.datetime | None]
    acknowledged_at: Mapped[dt.datetime | None]
    overdue_notified_at: Mapped[dt.datetime | None]

    case: Mapped[Case] = relationship(lazy="joined")
    parent: Mapped["Consultation | None"] = relationship(remote_side=[id], foreign_keys=[parent_id])
    requesting_institution: Mapped[Institution] = relationship(foreign_keys=[requesting_institution_id])
    receiving_institution: Mapped[Institution | None] = relationship(foreign_keys=[receiving_institution_id])
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    requested_expert: Mapped[User | None] = relationship(foreign_keys=[requested_expert_id])
    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])


class ConsultationEvent(Base):
    """History of one request: every transition with actor, time, reason and comment."""

    __tablename__ = "consultation_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id", ondelete="CASCADE"), index=True)
    transition: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str] = mapped_column(String(24))
    to_state: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")
    comment: Mapped[str] = mapped_column(Text, default="")

    actor: Mapped[User | None] = relationship(lazy="joined")


class Notification(Base):
    """An in-app message for one user; ``kind`` and ``params`` are rendered in the reader's language."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    consultation_id: Mapped[int | None] = mapped_column(ForeignKey("consultations.id", ondelete="CASCADE"))
    case_id: Mapped[int | None] = mapped_column(Integer)
    params: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    read_at: Mapped[dt.datetime | None]
    delivered_at: Mapped[dt.datetime | None]
