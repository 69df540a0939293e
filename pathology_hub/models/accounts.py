"""Institutions of the consortium, their users, login sessions and API tokens."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Boolean, Column, Enum, ForeignKey, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow


class Tier(str, enum.Enum):
    COMMUNITY = "community"
    DISTRICT = "district"
    UNIVERSITY = "university"

    @property
    def rank(self) -> int:
        return {"community": 0, "district": 1, "university": 2}[self.value]


class Role(str, enum.Enum):
    TECHNICIAN = "technician"
    PATHOLOGIST = "pathologist"
    CLINICIAN = "clinician"
    ADMIN = "admin"


referral_links = Table(
    "referral_links",
    Base.metadata,
    Column("from_institution_id", ForeignKey("institutions.id", ondelete="CASCADE"), primary_key=True),
    Column("to_institution_id", ForeignKey("institutions.id", ondelete="CASCADE"), primary_key=True),
)


class Institution(Base):
    __tablename__ = "institutions"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    tier: Mapped[Tier] = mapped_column(Enum(Tier, native_enum=False, length=16,
                                            values_callable=lambda e: [m.value for m in e]))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: IANA zone in which this institution's users read times (domain/timezones.py).
    time_zone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai", server_default="Asia/Shanghai")
    #: Language of the report PDFs of cases this institution refers ("zh" or "en").
    report_language: Mapped[str] = mapped_column(String(8), default="zh", server_default="zh")
    #: The referring hospital's LIS that receives HL7 v2 ORU^R01 results over MLLP (None: not sent).
    lis_host: Mapped[str | None] = mapped_column(String(253))
    lis_port: Mapped[int | None] = mapped_column(Integer)

    refers_to: Mapped[list["Institution"]] = relationship(
        secondary=referral_links,
        primaryjoin=lambda: Institution.id == referral_links.c.from_institution_id,
        secondaryjoin=lambda: Institution.id == referral_links.c.to_institution_id,
        order_by=lambda: Institution.id,
    )
    users: Mapped[list["User"]] = relationship(back_populates="institution")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=16,
                                            values_callable=lambda e: [m.value for m in e]))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    locale: Mapped[str | None] = mapped_column(String(10))
    subspecialties: Mapped[str] = mapped_column(String(200), default="")
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None]
    password_changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    institution: Mapped[Institution] = relationship(back_populates="users", lazy="joined")

    # Set per request by the login layer: the server-side session this identity came from.
    session_token = None  # type: str | None  (not a column)

    # Flask-Login protocol, kept here so the model needs no Flask import.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return bool(self.active)

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str | None:
        return self.session_token

    def has_role(self, *roles: Role) -> bool:
        return self.role in roles


class UserSession(Base):
    """Server-side login session: lets us rotate ids at login and end sessions at once."""

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))

    user: Mapped[User] = relationship(lazy="joined")


class ApiToken(Base):
    """Bearer tokens for scanner workstations and scripts (no browser, no CSRF)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]

    user: Mapped[User] = relationship(lazy="joined")


class AuditEvent(Base):
    """Append-only record of who did what to which object, when and from where.

    Entries form a hash chain (see :mod:`pathology_hub.domain.audit`): ``seq`` is the
    position in the chain (assigned under a lock when the entry is flushed, unique so
    two writers can never both extend the same predecessor), ``prev_hash`` is the
    ``entry_hash`` of entry ``seq - 1`` and ``entry_hash`` is the SHA-256 of this
    entry's canonical serialisation including ``prev_hash``.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    actor_name: Mapped[str | None] = mapped_column(String(64))
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("institutions.id"))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str | None] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64))
    case_id: Mapped[int | None] = mapped_column(Integer, index=True)
    ip: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text, default="{}")
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))
