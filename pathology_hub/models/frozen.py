"""The frozen-section lane: who is on call per institution, and the pages a frozen request sends.

A page is stored per paged pathologist so the alarm stays on their screens until they
acknowledge it, and so an SMS that could not be sent yet is never forgotten (its status
is kept here; the retries run as a ``frozen_sms`` job).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .accounts import User
from .base import Base, utcnow


class OnCallShift(Base):
    """One pathologist on call for frozen sections at one institution, from ``starts_at`` to ``ends_at``."""

    __tablename__ = "on_call_shifts"

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    #: The number the SMS page goes to during this shift (optional; the gateway may look the user up).
    phone: Mapped[str] = mapped_column(String(32), default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(foreign_keys=[user_id], lazy="joined")


class FrozenPage(Base):
    """The page one pathologist received for one frozen request (alarm, e-mail, SMS)."""

    __tablename__ = "frozen_pages"

    id: Mapped[int] = mapped_column(primary_key=True)
    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: True when nobody was on call and every pathologist of the institution was paged instead.
    fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[dt.datetime | None]
    #: pending | sent | failed | not_configured (no SMS_WEBHOOK_URL)
    sms_status: Mapped[str] = mapped_column(String(16), default="pending")
    sms_attempts: Mapped[int] = mapped_column(Integer, default=0)
    sms_error: Mapped[str] = mapped_column(Text, default="")
    phone: Mapped[str] = mapped_column(String(32), default="")

    user: Mapped[User] = relationship(foreign_keys=[user_id], lazy="joined")
