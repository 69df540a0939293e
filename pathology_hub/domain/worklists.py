"""Worklists per role: what is waiting for this user, flagged against its turnaround target.

technician  – drafts, requests waiting for information from the centre, returned results
triage      – requests waiting for assignment at my institution (pathologists and admins)
pathologist – requests assigned to me (assigned, in review, waiting, escalated)
clinician   – results of the requests I made
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..models import Case, Role, User, as_utc, utcnow
from ..models.consultations import Consultation, ConsultationEvent, ConsultationState as S
from . import consultations, policy, turnaround
from .errors import ValidationFailed

PRIORITY_RANK = {"frozen": 0, "urgent": 1, "routine": 2}
SORT_KEYS = ("priority", "state", "age", "institution")


@dataclass
class Item:
    consultation: Consultation
    tat: turnaround.TatStatus | None
    age_seconds: float

    @property
    def flag(self) -> str:
        return self.tat.flag if self.tat else "ok"


@dataclass(frozen=True)
class Filters:
    priority: str | None = None
    state: str | None = None
    institution: str | None = None
    older_than_hours: float | None = None
    flag: str | None = None
    sort: str = "priority"
    descending: bool = False

    @classmethod
    def parse(cls, args: dict[str, Any]) -> "Filters":
        def one_of(name: str, allowed: set[str]) -> str | None:
            value = (args.get(name) or "").strip()
            if value and value not in allowed:
                raise ValidationFailed("%(field)s must be one of: %(allowed)s.", code="invalid_choice",
                                       details={"field": name}, params={"allowed": ", ".join(sorted(allowed))})
            return value or None
        older = args.get("older_than_hours")
        try:
            older_f = float(older) if older not in (None, "") else None
        except ValueError:
            raise ValidationFailed("older_than_hours must be a number.", code="invalid_number",
                                   details={"field": "older_than_hours"}) from None
        return cls(priority=one_of("priority", set(PRIORITY_RANK)), state=one_of("state", {s.value for s in S}),
                   institution=(args.get("institution") or "").strip() or None, older_than_hours=older_f,
                   flag=one_of("flag", {"ok", "approaching", "overdue"}),
                   sort=one_of("sort", set(SORT_KEYS)) or "priority",
                   descending=(args.get("order") or "asc").lower() == "desc")


def lists_for(user: User) -> list[str]:
    return {Role.TECHNICIAN: ["technician"], Role.CLINICIAN: ["clinician"],
            Role.PATHOLOGIST: ["pathologist", "triage"], Role.ADMIN: ["triage"]}[user.role]


def _query(session: Session, user: User, name: str) -> list[Consultation]:
    stmt = select(Consultation).join(Case, Case.id == Consultation.case_id)
    if name == "technician":
        stmt = stmt.where(Case.institution_id == user.institution_id,
                          Consultation.state.in_([S.DRAFT, S.INFO_REQUESTED, S.RETURNED]))
    elif name == "clinician":
        stmt = stmt.where(Case.institution_id == user.institution_id, Consultation.parent_id.is_(None),
                          or_(Case.requesting_clinician_id == user.id, Consultation.created_by_id == user.id),
                          Consultation.state.in_([S.RETURNED, S.ACKNOWLEDGED]))
    elif name == "triage":
        declined = select(ConsultationEvent.consultation_id).where(ConsultationEvent.transition == "decline",
                                                                   ConsultationEvent.actor_id == user.id)
        stmt = stmt.where(Consultation.state == S.TRIAGE, Consultation.receiving_institution_id == user.institution_id,
                          Consultation.id.not_in(declined))
    else:
        stmt = stmt.where(Consultation.assignee_id == user.id, Consultation.state.in_(consultations.ACTIVE_ASSIGNED))
    return list(session.scalars(stmt.limit(500)))


def _keep(item: Item, f: Filters) -> bool:
    c = item.consultation
    if f.priority and c.priority.value != f.priority:
        return False
    if f.state and c.state.value != f.state:
        return False
    if f.institution and f.institution not in (c.case.institution.code, c.requesting_institution.code):
        return False
    if f.older_than_hours is not None and item.age_seconds < f.older_than_hours * 3600:
        return False
    return not (f.flag and item.flag != f.flag)


def _sort_key(item: Item, key: str) -> tuple:
    c = item.consultation
    return {"priority": (PRIORITY_RANK[c.priority.value], -item.age_seconds),
            "state": (c.state.value, -item.age_seconds),
            "age": (-item.age_seconds,),
            "institution": (c.case.institution.code, -item.age_seconds)}[key]


def worklists(session: Session, user: User, filters: Filters | None = None,
              now: dt.datetime | None = None) -> dict[str, list[Item]]:
    """The user's lists, filtered and sorted; ``age`` sorts oldest first unless ``descending``."""
    policy.ensure(user, "worklist.view")
    f, now = filters or Filters(), now or utcnow()
    out: dict[str, list[Item]] = {}
    for name in lists_for(user):
        items = []
        for c in _query(session, user, name):
            if not policy.can(user, "consultation.view", c):
                continue
            started = as_utc(c.submitted_at or c.created_at)
            items.append(Item(c, turnaround.status(c, now), (as_utc(now) - started).total_seconds()))
        items = [i for i in items if _keep(i, f)]
        items.sort(key=lambda i: _sort_key(i, f.sort), reverse=f.descending)
        out[name] = items
    return out
