"""Signed checkpoints anchor the keyless audit hash chain.

The chain (:mod:`pathology_hub.domain.audit`) shows an edited, deleted or inserted
entry, but not a *consistent rewrite*: whoever can write the table can change an
entry and recompute every later hash, or cut entries off the end. A checkpoint
records the head (``seq``, ``entry_hash``) at a point in time and signs it with the
deployment's signing key (the report signing key: ``REPORT_SIGNING_KEY`` or the
embedded default under ``instance/signing/``), which the database does not hold.

``flask audit verify`` then also checks that every checkpoint's signature is valid,
that the entry at each checkpointed ``seq`` still has the checkpointed hash (a rewrite
of anything before a checkpoint is caught), that the chain is not shorter than the
newest checkpoint (a cut-off tail is caught), and that no checkpoint row was deleted
(each checkpoint is announced by an ``audit.checkpoint`` entry in the chain itself).

Checkpoints are written by a periodic worker task (``AUDIT_CHECKPOINT_MINUTES``,
``AUDIT_CHECKPOINT_ENTRIES``) and by ``flask audit checkpoint``. Entries after the newest
checkpoint are protected by the chain only, so the interval is the exposure window.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import AuditEvent, as_utc, utcnow
from ..models.audit_checkpoints import AuditCheckpoint
from . import audit

log = logging.getLogger("pathology_hub.audit")

CHECKPOINT_ACTION = "audit.checkpoint"


# ---------------------------------------------------------------- signing
def _message(seq: int, entry_hash: str, created_at: dt.datetime) -> bytes:
    """The signed statement; a stored contract (changing it invalidates every checkpoint)."""
    return (f"pathology-hub audit checkpoint v1\nseq={seq}\nentry_hash={entry_hash}\n"
            f"at={audit.canonical_time(created_at)}\n").encode("ascii")


def _public_key(identity):
    return identity.certificate.public_key()


def key_fingerprint(identity) -> str:
    from cryptography.hazmat.primitives import serialization
    der = _public_key(identity).public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _sign(identity, message: bytes) -> tuple[str, str]:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    key = serialization.load_pem_private_key(identity.key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ecdsa-sha256", base64.b64encode(key.sign(message, ec.ECDSA(hashes.SHA256()))).decode()
    return "rsa-pkcs1v15-sha256", base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def _signature_valid(identity, cp: AuditCheckpoint) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    try:
        signature = base64.b64decode(cp.signature, validate=True)
        message = _message(cp.seq, cp.entry_hash, cp.created_at)
        key = _public_key(identity)
        if cp.algorithm == "ecdsa-sha256":
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif cp.algorithm == "rsa-pkcs1v15-sha256":
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


# ---------------------------------------------------------------- writing
def latest(session: Session) -> AuditCheckpoint | None:
    return session.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(1))


def _head(session: Session) -> tuple[int, str] | None:
    row = session.execute(select(AuditEvent.seq, AuditEvent.entry_hash)
                          .order_by(AuditEvent.seq.desc()).limit(1)).first()
    return None if row is None else (row[0], row[1])


class ChainBroken(RuntimeError):
    """The entries since the last checkpoint do not verify: a checkpoint would bless the damage."""


def _verify_since(session: Session, last: AuditCheckpoint | None, head_seq: int) -> None:
    """Walk the entries after the newest checkpoint (cheap) before signing a new head."""
    rows = session.connection().execute(
        select(*audit._VERIFY_COLUMNS).where(AuditEvent.seq > (last.seq if last else 0),
                                             AuditEvent.seq <= head_seq).order_by(AuditEvent.seq))
    report = audit._walk(rows, last.entry_hash if last else audit.GENESIS, audit.ChainReport(checked=0))
    if not report.intact:
        raise ChainBroken(f"audit chain broken at seq {report.broken_seq}: {report.reason}")


def write_checkpoint(session: Session, identity, *, now: dt.datetime | None = None) -> AuditCheckpoint | None:
    """Sign the current head; None when nothing new was written since the newest checkpoint.

    The caller commits. Refuses (:class:`ChainBroken`) when the entries since the newest
    checkpoint do not verify. Another process checkpointing the same head at the same
    moment is harmless (``seq`` is unique: the second insert fails and is rolled back)."""
    head = _head(session)
    last = latest(session)
    if head is None or (last is not None and _only_checkpoint_since(session, last)):
        return None
    seq, entry_hash = head
    _verify_since(session, last, seq)
    created = now or utcnow()
    algorithm, signature = _sign(identity, _message(seq, entry_hash, created))
    cp = AuditCheckpoint(seq=seq, entry_hash=entry_hash, created_at=created, algorithm=algorithm,
                         key_fingerprint=key_fingerprint(identity), signature=signature)
    session.add(cp)
    session.flush()
    # Announced in the chain itself, so deleting checkpoint rows is detected too.
    audit.record(session, CHECKPOINT_ACTION, actor_name="system", object_type="audit_checkpoint", object_id=cp.id,
                 details={"checkpoint_seq": seq, "entry_hash": entry_hash})
    session.flush()
    log.info("audit checkpoint written", extra={"seq": seq})
    return cp


def _only_checkpoint_since(session: Session, last: AuditCheckpoint) -> bool:
    """Whether every entry after ``last`` is the announcement of ``last`` itself (nothing new to anchor)."""
    return session.scalar(select(AuditEvent.id).where(AuditEvent.seq > last.seq,
                                                      AuditEvent.action != CHECKPOINT_ACTION).limit(1)) is None


def due(session: Session, *, every_minutes: int, every_entries: int, now: dt.datetime | None = None) -> bool:
    """Whether the periodic task should checkpoint now: enough new entries, or enough time with any."""
    head = _head(session)
    if head is None:
        return False
    last = latest(session)
    if last is None:
        return True
    new = head[0] - last.seq - 1  # the announcement of the last checkpoint does not count
    if new <= 0:
        return False
    if every_entries > 0 and new >= every_entries:
        return True
    age = (now or utcnow()) - as_utc(last.created_at)
    return age >= dt.timedelta(minutes=every_minutes)


def checkpoint_if_due(session: Session, identity, *, every_minutes: int, every_entries: int) -> AuditCheckpoint | None:
    if not due(session, every_minutes=every_minutes, every_entries=every_entries):
        return None
    try:
        cp = write_checkpoint(session, identity)
        session.commit()
        return cp
    except IntegrityError:  # another process checkpointed this head a moment ago
        session.rollback()
        return None


# ---------------------------------------------------------------- verifying
@dataclass
class CheckpointReport:
    checked: int = 0
    latest_seq: int | None = None
    latest_hash: str | None = None
    latest_at: dt.datetime | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_checkpoints(session: Session, identity, *, max_problems: int = 20) -> CheckpointReport:
    """Check every checkpoint against the key and the chain (see the module docstring)."""
    report = CheckpointReport()
    head = _head(session)
    head_seq = head[0] if head else 0
    fingerprint = key_fingerprint(identity)
    rows = session.execute(select(AuditCheckpoint, AuditEvent.entry_hash)
                           .outerjoin(AuditEvent, AuditEvent.seq == AuditCheckpoint.seq)
                           .order_by(AuditCheckpoint.seq)).all()
    seen: set[tuple[int, str]] = set()

    def problem(text: str) -> None:
        if len(report.problems) < max_problems:
            report.problems.append(text)

    for cp, chain_hash in rows:
        report.checked += 1
        seen.add((cp.seq, cp.entry_hash))
        if cp.key_fingerprint != fingerprint:
            problem(f"checkpoint at seq {cp.seq}: signed by another key ({cp.key_fingerprint[:16]}…), not this "
                    "deployment's signing key; if the key was replaced on purpose, keep the old certificate to verify")
            continue
        if not _signature_valid(identity, cp):
            problem(f"checkpoint at seq {cp.seq}: signature invalid (the checkpoint row was altered)")
            continue
        if chain_hash is None:
            if cp.seq > head_seq:
                problem(f"checkpoint at seq {cp.seq}: the chain ends at seq {head_seq}, so entries up to at least "
                        f"seq {cp.seq} were cut off the end of the trail")
            else:
                problem(f"checkpoint at seq {cp.seq}: no entry with that seq (entries were removed)")
        elif chain_hash != cp.entry_hash:
            problem(f"checkpoint at seq {cp.seq}: the entry's hash differs from the signed checkpoint, so the "
                    "trail up to it was rewritten (hashes recomputed)")
        report.latest_seq, report.latest_hash, report.latest_at = cp.seq, cp.entry_hash, cp.created_at
    for details in session.scalars(select(AuditEvent.details).where(AuditEvent.action == CHECKPOINT_ACTION)):
        try:
            d = json.loads(details)
            key = (int(d["checkpoint_seq"]), str(d["entry_hash"]))
        except (ValueError, KeyError, TypeError):
            problem("an audit.checkpoint entry is unreadable")
            continue
        if key not in seen:
            problem(f"the checkpoint at seq {key[0]} announced in the trail is missing (checkpoint rows were deleted)")
    return report
