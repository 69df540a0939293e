"""Signed checkpoints of the audit chain's head (see :mod:`pathology_hub.domain.audit_checkpoints`)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class AuditCheckpoint(Base):
    """The chain head (``seq``, ``entry_hash``) at ``created_at``, signed with the deployment key.

    The hash chain alone is keyless: whoever can write the table can rewrite it and recompute
    every hash, or cut off its tail. A checkpoint fixes what the chain looked like at a point in
    time with a signature only the deployment's signing key can make."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    entry_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    algorithm: Mapped[str] = mapped_column(String(32))
    key_fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of the signer's public key (DER)
    signature: Mapped[str] = mapped_column(Text)               # base64
