"""The administrator's view of the audit trail: one page of it, a full chain check, the CSV export.

Each function is one unit of work for the web layer's audit pages (see ``unit_of_work``);
the trail itself (recording, hashing, filtering) is ``audit.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from sqlalchemy import select

from ..db import independent_session
from ..models import AuditEvent, Case, Institution, User
from . import audit, refusal_audit, unit_of_work


@dataclass
class AuditPage:
    """What the audit page shows: the entries, the case numbers and institution codes they name,
    and the check of the newest entries of the chain."""

    entries: list[AuditEvent]
    has_next: bool
    recent: audit.ChainReport
    case_numbers: dict[int, str] = field(default_factory=dict)
    institutions: dict[int, str] = field(default_factory=dict)


def browse(flt: audit.AuditFilter | None, *, number: int, size: int, recent: int) -> AuditPage:
    """Page ``number`` of the entries matching ``flt`` (none when the filter was invalid), with the
    newest ``recent`` entries re-verified. Refusal windows that have elapsed are written first, so
    they show up now."""
    refusal_audit.maybe_flush(every_call=True)
    session = unit_of_work.current()
    entries, has_next = ([], False) if flt is None else audit.page(session, flt, number=number, size=size)
    case_ids = {e.case_id for e in entries if e.case_id is not None}
    case_numbers = dict(session.execute(select(Case.id, Case.case_number).where(Case.id.in_(case_ids)))
                        .tuples().all()) if case_ids else {}
    institutions = dict(session.execute(select(Institution.id, Institution.code)).tuples().all())
    return AuditPage(entries, has_next, audit.verify_chain(session, last=recent), case_numbers, institutions)


def verify_all(actor: User, *, ip: str | None = None) -> audit.ChainReport:
    """Check the entire chain now and record that it was checked (and what was found)."""
    with unit_of_work.transaction() as session:
        report = audit.verify_chain(session)
        audit.record(session, "audit.verified", actor=actor, ip=ip,
                     details={"checked": report.checked, "intact": report.intact, "broken_id": report.broken_id})
    return report


def start_export(actor: User, flt: audit.AuditFilter, *, ip: str | None = None) -> None:
    """Record the export (with its filters) before any row leaves: an export is itself audited."""
    with unit_of_work.transaction() as session:
        audit.record(session, "audit.exported", actor=actor, ip=ip, details={"filters": flt.as_details()})


def export_rows(flt: audit.AuditFilter) -> Iterator[list[Any]]:
    """The CSV rows (header first), read in a session of their own: the response streams after
    the request's session is gone."""
    with independent_session() as session:
        yield from audit.csv_rows(session, flt)
