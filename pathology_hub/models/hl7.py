"""The HL7 v2 outbox: one row per ORU^R01 message for a referring hospital's LIS.

A row is written in the transaction that signs a report version, so a signed result can
never miss its message; the worker sends it over MLLP and keeps retrying while the LIS is
down. ``message`` is the exact ER7 text sent (re-sending sends the same bytes).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .accounts import Institution
from .base import Base, utcnow


class Hl7Message(Base):
    """``status``: queued (waiting or retrying) → delivered (ACK AA) | failed (ACK AE/AR)."""

    __tablename__ = "hl7_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("report_versions.id"), index=True)
    control_id: Mapped[str] = mapped_column(String(40), unique=True)
    result_status: Mapped[str] = mapped_column(String(1))
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    ack_code: Mapped[str | None] = mapped_column(String(2))
    last_error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    next_attempt_at: Mapped[dt.datetime | None]
    last_attempt_at: Mapped[dt.datetime | None]
    delivered_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    institution: Mapped[Institution] = relationship()
