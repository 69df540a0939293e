"""The consultation workflow as the web pages and the JSON API read and drive it.

Each function is one unit of work for one handler (see ``unit_of_work``): it reads in the
caller's session, or runs a change and commits it (a refused change is rolled back). The rules
themselves stay in ``consultations.py`` (state machine), ``results.py``, ``worklists.py``,
``turnaround.py`` and ``notifications.py``; this module only composes them, so the web layer
needs neither models nor sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..models import Case, User, utcnow
from ..models.consultations import Consultation, ConsultationEvent, ConsultationState as S, Notification
from . import consultations as svc
from . import notifications as notes
from . import policy, results, turnaround, unit_of_work, worklists
from .errors import ValidationFailed

_HAS_RESULT = (S.REPORTED, S.RETURNED, S.ACKNOWLEDGED)


def tat_now(c: Consultation) -> turnaround.TatStatus | None:
    """The request's turnaround status at this moment."""
    return turnaround.status(c, utcnow())


def result_of(c: Consultation) -> results.Result | None:
    """The result in force (from the signed report versions); None before one is reported."""
    if c.state not in _HAS_RESULT:
        return None
    return results.result_in_force(unit_of_work.current(), c)


def preliminaries_of(c: Consultation) -> list[results.Preliminary]:
    return results.preliminary_opinions(unit_of_work.current(), c)


@dataclass
class Detail:
    """What a full view of a request adds: opinions along the chain, escalations below it, its history."""

    preliminaries: list[results.Preliminary]
    children: list[Consultation]
    history: list[ConsultationEvent]


def detail_of(c: Consultation) -> Detail:
    session = unit_of_work.current()
    return Detail(results.preliminary_opinions(session, c), svc.children_of(session, c), svc.history(session, c))


def on_case(user: User, case: Case) -> list[Consultation]:
    """The requests on a case that the user may see."""
    return svc.for_case(unit_of_work.current(), user, case)


def case_panel(user: User, case: Case) -> dict[str, Any]:
    """The consultation panel of a case page: the visible requests and whether a new one may be made."""
    return {"items": on_case(user, case), "can_create": policy.can(user, "consultation.create", case)}


def create_request(user: User, case: Case, data: dict[str, Any], *, ip: str | None = None) -> Consultation:
    """A new draft request on ``case``, committed."""
    with unit_of_work.transaction() as session:
        return svc.create(session, user, case, data, ip=ip)


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1", "on", "yes")


def _dispatch(session: Any, user: User, c: Consultation, name: str, data: dict[str, Any],
              ip: str | None) -> dict[str, Any]:
    if name == "submit":
        return {"warnings": svc.submit(session, user, c, acknowledge_warnings=_truthy(data.get("acknowledge_warnings")),
                                       ip=ip)}
    if name == "assign":
        return {"assigned_to": svc.assign(session, user, c, data.get("assignee_id"), ip=ip).username}
    if name == "escalate":
        child = svc.escalate(session, user, c, data.get("preliminary_opinion"), expert_id=data.get("expert_id"), ip=ip)
        return {"child_id": child.id}
    if name == "acknowledge":
        svc.acknowledge(session, user, c, data.get("version"), ip=ip)
        return {"acknowledged_version": int(str(data.get("version")).strip())}
    simple: dict[str, Callable[[], Any]] = {
        "accept": lambda: svc.accept(session, user, c, ip=ip),
        "decline": lambda: svc.decline(session, user, c, data.get("reason"), ip=ip),
        "request_info": lambda: svc.request_info(session, user, c, data.get("comment"), ip=ip),
        "answer_info": lambda: svc.answer_info(session, user, c, data.get("comment"), ip=ip),
        "return_result": lambda: svc.return_result(session, user, c, data.get("follow_up_advice"), ip=ip),
        "cancel": lambda: svc.cancel(session, user, c, data.get("reason"), ip=ip),
    }
    if name not in simple:
        raise ValidationFailed("Unknown transition.", code="unknown_transition",
                               details={"allowed": svc.allowed_from(c.state)})
    simple[name]()
    return {}


def transition(user: User, c: Consultation, name: str, data: dict[str, Any], *,
               ip: str | None = None) -> dict[str, Any]:
    """Run transition ``name`` with the fields it needs and commit; returns what the transition
    produced (warnings, the assignee, the escalation's id, the acknowledged version)."""
    with unit_of_work.transaction() as session:
        return _dispatch(session, user, c, name, data, ip)


@dataclass
class DetailPage:
    """The request page: what the user may do, and what each action's form needs."""

    actions: list[str]
    history: list[ConsultationEvent]
    children: list[Consultation]
    tat: turnaround.TatStatus | None
    candidates: list[User]
    no_subspecialty_match: bool
    experts: list[User]
    warnings: list[dict[str, Any]]


def detail_page(user: User, c: Consultation) -> DetailPage:
    session = unit_of_work.current()
    actions = svc.actions_for(user, c)
    return DetailPage(actions=actions, history=svc.history(session, c), children=svc.children_of(session, c),
                      tat=tat_now(c), candidates=svc.candidates(session, c) if "assign" in actions else [],
                      no_subspecialty_match="assign" in actions and svc.no_subspecialty_match(session, c),
                      experts=svc.escalation_experts(session, c) if "escalate" in actions else [],
                      warnings=svc.slide_warnings(c.case) if "submit" in actions else [])


@dataclass
class ResultPage:
    result: results.Result | None
    preliminaries: list[results.Preliminary]
    can_acknowledge: bool


def result_page(user: User, c: Consultation) -> ResultPage:
    """The result for the referring centre. Reading never acknowledges (that is a POST for one version)."""
    session = unit_of_work.current()
    result = results.result_in_force(session, c)
    return ResultPage(result, results.preliminary_opinions(session, c),
                      result is not None and "acknowledge" in svc.actions_for(user, c))


def my_worklists(user: User, filters: worklists.Filters) -> dict[str, list[worklists.Item]]:
    return worklists.worklists(unit_of_work.current(), user, filters)


@dataclass
class Turnaround:
    data: dict[str, list[dict[str, Any]]]
    names: dict[str, dict[str, str]]


def turnaround_dashboard(*, with_names: bool = False) -> Turnaround:
    """The dashboard rows; with the display names of institutions and pathologists when asked (charts)."""
    session = unit_of_work.current()
    data = turnaround.dashboard(session)
    return Turnaround(data, turnaround.display_names(session, data) if with_names else {})


def inbox(user: User) -> tuple[list[Notification], int]:
    """The user's recent notifications and how many are unread."""
    session = unit_of_work.current()
    return notes.recent(session, user), notes.unread_count(session, user)


def unread(user: User) -> int:
    return notes.unread_count(unit_of_work.current(), user)


def mark_read(user: User, ids: list[int] | None) -> tuple[int, int]:
    """Mark ``ids`` (all when None) read and commit; returns (marked, still unread)."""
    with unit_of_work.transaction() as session:
        changed = notes.mark_read(session, user, ids)
    return changed, notes.unread_count(unit_of_work.current(), user)
