"""Background job records: the database, not the queue, is the source of truth.

Huey does not acknowledge tasks, so a worker killed mid-task would lose it; a
lease with heartbeat lets a reaper re-queue work whose worker died.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Enum, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    slide_id: Mapped[int | None] = mapped_column(ForeignKey("slides.id"), index=True)
    state: Mapped[JobState] = mapped_column(Enum(JobState, native_enum=False, length=16,
                                                 values_callable=lambda e: [m.value for m in e]),
                                            default=JobState.QUEUED, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None]
    heartbeat_at: Mapped[dt.datetime | None]
    progress: Mapped[str] = mapped_column(Text, default="{}")
    error: Mapped[str | None] = mapped_column(Text)
    #: Start of the object-storage outage this job is waiting out (None when not waiting).
    storage_wait_since: Mapped[dt.datetime | None]
    #: When the next attempt is due while waiting for storage.
    retry_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
