"""Who may join a consultation's live session, the audit of joining and leaving, and the chat.

Joining follows the consultation's own access rule (``consultation.view``): whoever may open
the consultation may join its session, and nobody else learns it exists (404). The chat is
kept with the consultation as history entries (``ConsultationEvent`` with transition
``live_chat``), so it stays in the consultation's record after the session ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..models.consultations import ConsultationEvent
from ..models.accounts import User
from . import audit, consultations, policy
from .live import chat_text
from .unit_of_work import current, transaction

CHAT_TRANSITION = "live_chat"


@dataclass(frozen=True)
class Member:
    """What a connection needs to remember about its user (no ORM object crosses threads)."""

    user_id: int
    name: str
    role: str
    consultation_id: int
    case_id: int


def member(user: User, consultation_id: int) -> Member:
    """The user's ticket into the session, or NotFound when they may not see the consultation."""
    c = consultations.get(current(), user, consultation_id)
    return Member(user.id, user.full_name or user.username, user.role.value, c.id, c.case_id)


def record_presence(user: User, m: Member, action: str, *, ip: str | None, transport: str) -> None:
    """``live.joined`` / ``live.left`` in the audit trail (ids only)."""
    with transaction() as session:
        audit.record(session, action, actor=user, object_type="consultation", object_id=m.consultation_id,
                     case_id=m.case_id, ip=ip, details={"transport": transport})


def post_chat(user: User, m: Member, text: Any) -> dict[str, Any]:
    """Keep a chat line with the consultation and return the message to broadcast."""
    body = chat_text(text)
    with transaction() as session:
        c = consultations.get(session, user, m.consultation_id)
        event = ConsultationEvent(consultation_id=c.id, transition=CHAT_TRANSITION, from_state=c.state.value,
                                  to_state=c.state.value, actor_id=user.id, comment=body)
        session.add(event)
        session.flush()
        at = event.at
    return {"type": "chat", "id": event.id, "userId": m.user_id, "name": m.name, "text": body,
            "at": at.isoformat() + "Z" if at.tzinfo is None else at.isoformat()}


def chat_history(user: User, m: Member, limit: int = 100) -> list[dict[str, Any]]:
    """The consultation's earlier chat lines, oldest first."""
    from sqlalchemy import select
    session = current()
    c = consultations.get(session, user, m.consultation_id)
    rows = list(session.scalars(select(ConsultationEvent).where(ConsultationEvent.consultation_id == c.id,
                                                                ConsultationEvent.transition == CHAT_TRANSITION)
                                .order_by(ConsultationEvent.id.desc()).limit(limit)))
    rows.reverse()
    return [{"type": "chat", "id": e.id, "userId": e.actor_id,
             "name": (e.actor.full_name or e.actor.username) if e.actor else "",
             "text": e.comment, "at": e.at.isoformat() + ("Z" if e.at.tzinfo is None else "")} for e in rows]


def live_consultations(user: User, case: Any) -> list[dict[str, Any]]:
    """The case's consultations this user may join, newest first (for the viewer's live panel)."""
    items = consultations.for_case(current(), user, case)
    return [{"id": c.id, "state": c.state.value} for c in reversed(items) if policy.can(user, "consultation.view", c)]
