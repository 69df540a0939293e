"""Append-only, tamper-evident audit trail.

Entries are only ever inserted; the ORM guard below refuses updates and deletes
so that no code path can quietly rewrite history.  Someone with direct database
access can still edit rows, so the entries also form a *hash chain*: each entry
stores the SHA-256 of its predecessor (``prev_hash``) and of its own canonical
serialisation including that ``prev_hash`` (``entry_hash``).  Changing, deleting,
inserting or reordering an entry breaks the chain at that point, which
:func:`verify_chain` (``flask audit verify``) reports.  (Cutting entries off the
*end* of the chain is only detectable against a head hash kept elsewhere; the
CLI prints the head so operators can note it.)

Chaining happens in a ``before_flush`` hook rather than in :func:`record`,
because callers add entries to a session that flushes later, possibly several at
once: at flush time the pending entries are chained in insertion order after the
current head, which is read under a lock so two transactions can never extend
the same predecessor:

* PostgreSQL: ``pg_advisory_xact_lock`` (held until commit/rollback, so the
  next writer reads the head only after this transaction's entries are visible
  — READ COMMITTED takes a fresh snapshot per statement).
* SQLite: the database write lock.  If the transaction has not written yet we
  issue ``BEGIN IMMEDIATE`` before reading the head (pysqlite would otherwise
  start a deferred transaction only at the INSERT, after the head was read);
  if it has already written it holds the write lock anyway.

``seq`` is UNIQUE, so even if the locking were bypassed a fork would fail with
an integrity error instead of silently forking the chain.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from sqlalchemy import Connection, event, inspect, select, text
from sqlalchemy.orm import Session

from ..models import AuditEvent, User
from ..models.base import utcnow

#: ``prev_hash`` of the first entry of every chain.
GENESIS = "0" * 64
#: Arbitrary fixed key for ``pg_advisory_xact_lock`` ("PHAUDIT" in ASCII).
ADVISORY_LOCK_KEY = 0x50484155444954
#: Fields covered by ``entry_hash``, in the order they are documented (the JSON keys are sorted anyway).
HASHED_FIELDS = ("seq", "at", "actor_id", "actor_name", "institution_id", "action", "object_type",
                 "object_id", "case_id", "ip", "details", "prev_hash")


def record(session: Session, action: str, *, actor: User | None = None, object_type: str | None = None,
           object_id: Any = None, case_id: int | None = None, ip: str | None = None,
           details: dict | None = None, actor_name: str | None = None) -> AuditEvent:
    """Add one audit entry to the session (committed with the caller's unit of work).

    ``details`` must never contain passwords or patient names; callers pass ids and codes.
    The entry gets its place in the hash chain when the session flushes.
    """
    entry = AuditEvent(
        at=utcnow(),
        action=action,
        actor_id=actor.id if actor else None,
        actor_name=actor.username if actor else actor_name,
        institution_id=actor.institution_id if actor else None,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        case_id=case_id,
        ip=ip,
        details=json.dumps(details or {}, ensure_ascii=False, sort_keys=True, default=str),
    )
    session.add(entry)
    return entry


# ---------------------------------------------------------------- canonical form and hashing
def canonical_time(value: dt.datetime) -> str:
    """ISO 8601 UTC with microseconds ("2026-11-23T08:00:00.000000Z").

    SQLite returns naive datetimes, which are UTC by convention here.
    """
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


#: One encoder for every digest (``json.dumps`` with options builds a new encoder per call).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_digest(*, seq: int, at: dt.datetime, actor_id: int | None, actor_name: str | None,
                 institution_id: int | None, action: str, object_type: str | None, object_id: str | None,
                 case_id: int | None, ip: str | None, details: str, prev_hash: str) -> str:
    """Hex SHA-256 of the canonical serialisation of one entry.

    This format is a stored contract: migration 0004 contains a frozen copy, and
    changing it would make every existing chain fail verification.
    """
    return _digest(seq, at, actor_id, actor_name, institution_id, action, object_type, object_id, case_id, ip,
                   details, prev_hash)


def _digest(seq: int, at: dt.datetime, actor_id: int | None, actor_name: str | None, institution_id: int | None,
            action: str, object_type: str | None, object_id: str | None, case_id: int | None, ip: str | None,
            details: str, prev_hash: str) -> str:
    doc = {"v": 1, "seq": seq, "at": canonical_time(at), "actor_id": actor_id, "actor_name": actor_name,
           "institution_id": institution_id, "action": action, "object_type": object_type,
           "object_id": object_id, "case_id": case_id, "ip": ip, "details": details, "prev_hash": prev_hash}
    return hashlib.sha256(_ENCODER.encode(doc).encode("utf-8")).hexdigest()


def _digest_of(entry: AuditEvent) -> str:
    return entry_digest(**{name: getattr(entry, name) for name in HASHED_FIELDS})


# ---------------------------------------------------------------- appending
def _lock_chain(conn: Connection) -> None:
    """Serialise appends: only one transaction at a time may read the head and extend it."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    elif dialect == "sqlite":
        raw = conn.connection.dbapi_connection
        if raw is not None and not raw.in_transaction:
            # Take the write lock now; waits up to busy_timeout for another writer to commit.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    # Other databases: the UNIQUE seq still refuses a fork (the losing transaction fails).


def _chain_head(conn: Connection) -> tuple[int, str]:
    row = conn.execute(select(AuditEvent.seq, AuditEvent.entry_hash)
                       .order_by(AuditEvent.seq.desc()).limit(1)).first()
    return (0, GENESIS) if row is None else (row[0], row[1])


@event.listens_for(Session, "before_flush")
def _refuse_audit_changes(session: Session, _ctx: Any, _instances: Any) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise RuntimeError("audit events are append-only")


@event.listens_for(Session, "before_flush")
def _chain_new_entries(session: Session, _ctx: Any, _instances: Any) -> None:
    pending = [obj for obj in session.new if isinstance(obj, AuditEvent)]
    if not pending:
        return
    # Insertion order of session.add(); a retried flush recomputes everything from the current head.
    pending.sort(key=lambda obj: inspect(obj).insert_order or 0)
    conn = session.connection()
    _lock_chain(conn)
    seq, prev = _chain_head(conn)
    for entry in pending:
        seq += 1
        if entry.at is None:
            entry.at = utcnow()
        if entry.details is None:
            entry.details = "{}"
        entry.seq = seq
        entry.prev_hash = prev
        entry.entry_hash = prev = _digest_of(entry)


# ---------------------------------------------------------------- verification
@dataclass
class ChainReport:
    """Outcome of walking (part of) the chain."""

    checked: int
    first_seq: int | None = None
    head_seq: int | None = None
    head_hash: str | None = None
    broken_id: int | None = None
    broken_seq: int | None = None
    problem: str | None = None   # "modified" | "linkage"
    reason: str | None = None

    @property
    def intact(self) -> bool:
        return self.broken_id is None


#: id, the hashed fields in ``_digest`` argument order, then entry_hash (positional access is the fast path).
_VERIFY_COLUMNS = [AuditEvent.id, *(getattr(AuditEvent, name) for name in HASHED_FIELDS), AuditEvent.entry_hash]


def _walk(rows: Iterable[Any], expected_prev: str, report: ChainReport) -> ChainReport:
    checked = 0
    try:
        for row in rows:
            entry_id, seq, prev_hash, entry_hash = row[0], row[1], row[12], row[13]
            if report.first_seq is None:
                report.first_seq = seq
            checked += 1
            if _digest(*row[1:13]) != entry_hash:
                report.broken_id, report.broken_seq, report.problem = entry_id, seq, "modified"
                report.reason = ("hash mismatch: the stored entry_hash does not match the entry's content, "
                                 "so the entry (or its prev_hash) was modified after it was written")
                return report
            if prev_hash != expected_prev:
                report.broken_id, report.broken_seq, report.problem = entry_id, seq, "linkage"
                report.reason = ("prev_hash mismatch: the entry does not chain from the entry before it, "
                                 "so an entry was deleted, inserted or reordered just before this one")
                return report
            expected_prev = entry_hash
            report.head_seq, report.head_hash = seq, entry_hash
        return report
    finally:
        report.checked += checked


def verify_chain(session: Session, *, last: int | None = None, batch: int = 5000) -> ChainReport:
    """Walk the chain in ``seq`` order and stop at the first broken link.

    ``last`` checks only the newest ``last`` entries (trusting the ``entry_hash``
    of the entry before them), which is cheap enough for every admin page view.
    Rows are streamed (``yield_per``) so 100k+ entries need little memory.
    """
    report = ChainReport(checked=0)
    query = select(*_VERIFY_COLUMNS).order_by(AuditEvent.seq)
    expected_prev = GENESIS
    if last is not None:
        head = session.execute(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)).scalar()
        if head is None:
            return report
        start = max(head - last, 0)
        if start > 0:
            anchor = session.execute(select(AuditEvent.seq, AuditEvent.entry_hash)
                                     .where(AuditEvent.seq <= start).order_by(AuditEvent.seq.desc()).limit(1)).first()
            expected_prev = anchor.entry_hash if anchor is not None else GENESIS
            query = query.where(AuditEvent.seq > (anchor.seq if anchor is not None else 0))
    # Core rows through the session's connection: no ORM row processing on the 10^5-row path.
    result = session.connection().execute(query.execution_options(yield_per=batch))
    try:
        return _walk(result, expected_prev, report)
    finally:
        result.close()


# ---------------------------------------------------------------- searching (admin page and CSV export)
@dataclass
class AuditFilter:
    """Filters of the admin audit page; every field is optional."""

    case: str = ""          # case id or case number
    user: str = ""          # username
    action: str = ""        # action prefix, e.g. "report." or "slide.viewed"
    date_from: dt.date | None = None
    date_to: dt.date | None = None   # inclusive

    def as_details(self) -> dict:
        return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in vars(self).items() if v}


def parse_date(value: str | None, field: str) -> dt.date | None:
    from .errors import ValidationFailed
    value = (value or "").strip()
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed("%(field)s: expected a date as YYYY-MM-DD.", code="invalid_date",
                               details={"field": field}) from None


def build_filter(args: dict) -> AuditFilter:
    """Turn query-string values into a filter; bad dates are a validation error, not a crash."""
    from .errors import ValidationFailed
    f = AuditFilter(case=(args.get("case") or "").strip()[:64], user=(args.get("user") or "").strip()[:64],
                    action=(args.get("action") or "").strip()[:64],
                    date_from=parse_date(args.get("from"), "from"), date_to=parse_date(args.get("to"), "to"))
    if f.date_from and f.date_to and f.date_from > f.date_to:
        raise ValidationFailed("from: the start date is after the end date.", code="invalid_date_range")
    return f


def filtered_query(session: Session, f: AuditFilter):
    """``select(AuditEvent)`` restricted by ``f``, newest first (by chain position)."""
    from ..models import Case
    query = select(AuditEvent)
    if f.case:
        ids = set(session.scalars(select(Case.id).where(Case.case_number == f.case)))
        if f.case.isdigit():
            ids.add(int(f.case))
        query = query.where(AuditEvent.case_id.in_(sorted(ids)) if ids else AuditEvent.id.is_(None))
    if f.user:
        user_id = session.scalar(select(User.id).where(User.username == f.user))
        cond = AuditEvent.actor_name == f.user
        query = query.where(cond | (AuditEvent.actor_id == user_id) if user_id is not None else cond)
    if f.action:
        query = query.where(AuditEvent.action.startswith(f.action, autoescape=True))
    if f.date_from:
        query = query.where(AuditEvent.at >= dt.datetime.combine(f.date_from, dt.time(), dt.timezone.utc))
    if f.date_to:
        end = dt.datetime.combine(f.date_to + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
        query = query.where(AuditEvent.at < end)
    return query.order_by(AuditEvent.seq.desc())


def page(session: Session, f: AuditFilter, *, number: int = 1, size: int = 100) -> tuple[list[AuditEvent], bool]:
    """One page of entries (newest first) and whether a next page exists."""
    number = max(number, 1)
    rows = list(session.scalars(filtered_query(session, f).offset((number - 1) * size).limit(size + 1)))
    return rows[:size], len(rows) > size


CSV_COLUMNS = ("id", "at", "actor", "institution", "action", "object_type", "object_id", "case_id", "ip",
               "details", "entry_hash")


def _cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas (=, +, -, @ at the start of text) — OWASP CSV injection advice."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_rows(session: Session, f: AuditFilter, *, batch: int = 2000) -> Iterator[list]:
    """Rows of the CSV export (header first), streamed from the database."""
    from ..models import Institution
    codes = dict(session.execute(select(Institution.id, Institution.code)).tuples().all())
    yield list(CSV_COLUMNS)
    result = session.scalars(filtered_query(session, f).execution_options(yield_per=batch))
    try:
        for e in result:
            yield [e.id, canonical_time(e.at), _cell(e.actor_name or ""), codes.get(e.institution_id, ""),
                   _cell(e.action), _cell(e.object_type or ""), _cell(e.object_id or ""),
                   "" if e.case_id is None else e.case_id, _cell(e.ip or ""), _cell(e.details), e.entry_hash]
    finally:
        result.close()
