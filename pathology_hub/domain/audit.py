"""Append-only audit trail.

Entries are only ever inserted; the ORM guard below refuses updates and deletes
so that no code path can quietly rewrite history.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from ..models import AuditEvent, User


def record(session: Session, action: str, *, actor: User | None = None, object_type: str | None = None,
           object_id: Any = None, case_id: int | None = None, ip: str | None = None,
           details: dict | None = None, actor_name: str | None = None) -> AuditEvent:
    """Add one audit entry to the session (committed with the caller's unit of work).

    ``details`` must never contain passwords or patient names; callers pass ids and codes.
    """
    entry = AuditEvent(
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


@event.listens_for(Session, "before_flush")
def _refuse_audit_changes(session: Session, _ctx: Any, _instances: Any) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise RuntimeError("audit events are append-only")
