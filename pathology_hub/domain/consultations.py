"""The consultation state machine: the one place that says which transition is allowed when.

States and transitions (``TRANSITIONS``)::

    draft --submit--> triage --assign--> assigned --accept--> in_review
    assigned --decline--> triage                      (the decliner loses access)
    in_review --request_info--> info_requested --answer_info--> in_review   (TAT clock paused)
    in_review --escalate--> escalated    (a child request goes to the next tier; when the child
    escalated --child_reported--> reported  is reported the parent follows: internal transition)
    in_review --mark_reported--> reported --return_result--> returned --acknowledge--> acknowledged
    returned|acknowledged --result_amended--> returned   (internal: an amendment or addendum was signed;
                                          the new version in force needs its own acknowledgement)
    any state before reporting --cancel--> cancelled   (requester side, reason required)

Every transition is checked in this order: the request must be visible (else 404), the
transition must be allowed from the current state (else 409 ``invalid_transition`` with
the allowed list), then the actor must be permitted (policy ``consultation.<name>``, else
403), then the transition's own guard (slides ready, reason given…, else 422).  Each one
writes a ``consultation_events`` row and an audit entry ``consultation.<name>``.

Who triages: there is no separate triage role; pathologists and admins of the receiving
institution may triage (assign) requests waiting there.

``mark_reported`` is internal: it is fired by signing the report (domain/reports.py), never
requested over the API, so a consultation is reported only with a signed report.

No opinion or diagnosis is stored on a request: the result is read from the signed report
versions by :mod:`pathology_hub.domain.results`.  ``acknowledge`` is an explicit act for one
report version (the one in force), never a side effect of reading.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, object_session

from ..models import Case, Institution, Priority, Role, User, utcnow
from ..models.consultations import Consultation, ConsultationEvent, ConsultationState as S
from ..models.reports import ResultAcknowledgement
from . import audit, frozen, notifications, policy, results, slide_facts, subspecialties, turnaround
from .errors import Conflict, NotFound, ValidationFailed

TEXT_LIMIT = 10_000


@dataclass(frozen=True)
class Transition:
    name: str
    sources: frozenset[S]
    target: S
    internal: bool = False  # fired by the system as a consequence, never requested over the API


def _t(name: str, sources: set[S], target: S, internal: bool = False) -> tuple[str, Transition]:
    return name, Transition(name, frozenset(sources), target, internal)


BEFORE_REPORT = {S.DRAFT, S.TRIAGE, S.ASSIGNED, S.IN_REVIEW, S.INFO_REQUESTED, S.ESCALATED}
TRANSITIONS: dict[str, Transition] = dict([
    _t("submit", {S.DRAFT}, S.TRIAGE),
    _t("assign", {S.TRIAGE}, S.ASSIGNED),
    _t("accept", {S.ASSIGNED}, S.IN_REVIEW),
    _t("decline", {S.ASSIGNED}, S.TRIAGE),
    _t("request_info", {S.IN_REVIEW}, S.INFO_REQUESTED),
    _t("answer_info", {S.INFO_REQUESTED}, S.IN_REVIEW),
    _t("escalate", {S.IN_REVIEW}, S.ESCALATED),
    _t("mark_reported", {S.IN_REVIEW}, S.REPORTED, internal=True),  # fired by signing the report
    _t("child_reported", {S.ESCALATED}, S.REPORTED, internal=True),
    _t("return_result", {S.REPORTED}, S.RETURNED),
    _t("acknowledge", {S.RETURNED}, S.ACKNOWLEDGED),
    _t("result_amended", {S.RETURNED, S.ACKNOWLEDGED}, S.RETURNED, internal=True),  # fired by signing a new version
    _t("cancel", BEFORE_REPORT, S.CANCELLED),
])
PUBLIC_TRANSITIONS = [name for name, t in TRANSITIONS.items() if not t.internal]
#: States in which a request counts towards its assignee's load.
ACTIVE_ASSIGNED = (S.ASSIGNED, S.IN_REVIEW, S.INFO_REQUESTED, S.ESCALATED)


def allowed_from(state: S) -> list[str]:
    return [name for name in PUBLIC_TRANSITIONS if state in TRANSITIONS[name].sources]


class InvalidTransition(Conflict):
    code = "invalid_transition"

    def __init__(self, c: Consultation, name: str) -> None:
        super().__init__("Cannot %(transition_words)s a consultation that is %(state_words)s.",
                         params={"transition_words": name.replace("_", " "),
                                 "state_words": c.state.value.replace("_", " ")},
                         details={"state": c.state.value, "transition": name, "allowed": allowed_from(c.state)})


# ---------------------------------------------------------------- helpers
def _text(value: Any, field: str, *, required: bool = False) -> str:
    text = "" if value is None else str(value).strip()
    if required and not text:
        raise ValidationFailed("%(field)s is required.", code="missing_field", params={"field": field},
                               details={"field": field})
    if len(text) > TEXT_LIMIT:
        raise ValidationFailed("%(field)s is longer than %(max)s characters.", code="field_too_long",
                               details={"field": field, "max": TEXT_LIMIT})
    return text


def _record(session: Session, c: Consultation, name: str, actor: User | None, from_state: S, *,
            reason: str = "", comment: str = "", at: dt.datetime, ip: str | None = None,
            details: dict | None = None) -> ConsultationEvent:
    ev = ConsultationEvent(consultation_id=c.id, transition=name, from_state=from_state.value,
                           to_state=c.state.value, actor_id=actor.id if actor else None, at=at,
                           reason=reason, comment=comment)
    session.add(ev)
    audit.record(session, f"consultation.{name}", actor=actor, object_type="consultation", object_id=c.id,
                 case_id=c.case_id, ip=ip,
                 details={"from": from_state.value, "to": c.state.value, **(details or {})})
    return ev


def _move(session: Session, c: Consultation, name: str, actor: User | None, *, now: dt.datetime,
          reason: str = "", comment: str = "", ip: str | None = None, details: dict | None = None) -> None:
    t = TRANSITIONS[name]
    if c.state not in t.sources:
        raise InvalidTransition(c, name)
    before = c.state
    c.state = t.target
    c.updated_at = now
    _record(session, c, name, actor, before, reason=reason, comment=comment, at=now, ip=ip, details=details)


def _begin(user: User, c: Consultation, name: str) -> None:
    """Visibility (404), then state (409), then who may act (403)."""
    policy.ensure(user, "consultation.view", c)
    if c.state not in TRANSITIONS[name].sources:
        raise InvalidTransition(c, name)
    policy.ensure(user, f"consultation.{name}", c)


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or utcnow()


def triage_staff(session: Session, institution_id: int) -> list[User]:
    return list(session.scalars(select(User).where(
        User.institution_id == institution_id, User.active.is_(True),
        User.role.in_([Role.PATHOLOGIST, Role.ADMIN])).order_by(User.id)))


def requester_side(session: Session, c: Consultation) -> list[User]:
    """Who answers for the referring side: the centre's technicians, the requesting clinician
    and, for an escalation, the district pathologist who escalated."""
    users = list(session.scalars(select(User).where(
        User.institution_id == c.case.institution_id, User.active.is_(True), User.role == Role.TECHNICIAN)))
    if c.case.requesting_clinician is not None:
        users.append(c.case.requesting_clinician)
    if c.parent is not None and c.parent.assignee is not None:
        users.append(c.parent.assignee)
    return users


def decliners(session: Session, consultation_id: int) -> set[int]:
    return set(session.scalars(select(ConsultationEvent.actor_id).where(
        ConsultationEvent.consultation_id == consultation_id, ConsultationEvent.transition == "decline")))


def referral_chain(inst: Institution) -> list[Institution]:
    """Every institution above ``inst`` along its ``refers_to`` links (breadth first)."""
    seen: list[Institution] = []
    frontier = list(inst.refers_to)
    while frontier:
        nxt = frontier.pop(0)
        if nxt.id != inst.id and nxt not in seen:
            seen.append(nxt)
            frontier.extend(nxt.refers_to)
    return seen


def _validate_expert(session: Session, requesting: Institution, expert_id: Any) -> User | None:
    if expert_id in (None, ""):
        return None
    expert = session.get(User, int(expert_id)) if str(expert_id).isdigit() else None
    chain = {i.id for i in referral_chain(requesting)}
    if (expert is None or not expert.active or expert.role is not Role.PATHOLOGIST
            or expert.institution_id not in chain):
        raise ValidationFailed("The named expert must be an active pathologist of a higher-tier institution "
                               "in the referral chain.", code="invalid_expert", details={"field": "expert_id"})
    return expert


def _receiving_for(requesting: Institution) -> Institution:
    targets = [i for i in requesting.refers_to if i.active]
    if not targets:
        raise ValidationFailed("%(institution)s has no referral target configured.", code="no_referral_target",
                               params={"institution": requesting.code})
    return targets[0]


# ---------------------------------------------------------------- access along the chain
def case_access_grant(user: User, case: Case) -> bool:
    """Pathologists assigned to a request on the case, and triage staff while it waits at their
    institution (except those who declined it).  The originating centre is covered by the policy."""
    if user.role not in (Role.PATHOLOGIST, Role.ADMIN):
        return False
    session = object_session(case)
    if session is None:
        return False
    rows = session.execute(select(Consultation.id, Consultation.state, Consultation.receiving_institution_id,
                                  Consultation.assignee_id).where(Consultation.case_id == case.id,
                                                                  Consultation.state != S.DRAFT)).all()
    for cid, state, receiving_id, assignee_id in rows:
        if assignee_id == user.id:
            return True
        if (state is S.TRIAGE and receiving_id == user.institution_id
                and user.id not in decliners(session, cid)):
            return True
    return False



# ---------------------------------------------------------------- creating and submitting
def create(session: Session, user: User, case: Case, data: dict[str, Any], *, ip: str | None = None,
           now: dt.datetime | None = None) -> Consultation:
    """A draft request on a case of the user's own centre."""
    policy.ensure(user, "consultation.create", case)
    now = _now(now)
    priority = data.get("priority") or case.priority.value
    try:
        priority = Priority(priority)
    except ValueError:
        raise ValidationFailed("priority must be one of: routine, urgent, frozen.", code="invalid_choice",
                               details={"field": "priority"}) from None
    expert = _validate_expert(session, case.institution, data.get("expert_id"))
    c = Consultation(case_id=case.id, state=S.DRAFT, priority=priority, requesting_institution_id=case.institution_id,
                     question=_text(data.get("question"), "question", required=True),
                     subspecialty=subspecialties.validate_code(data.get("subspecialty")),
                     requested_expert_id=expert.id if expert else None, created_by_id=user.id,
                     created_at=now, updated_at=now)
    session.add(c)
    session.flush()
    session.refresh(c)
    session.add(ConsultationEvent(consultation_id=c.id, transition="create", from_state="", to_state=c.state.value,
                                  actor_id=user.id, at=now))
    audit.record(session, "consultation.create", actor=user, object_type="consultation", object_id=c.id,
                 case_id=case.id, ip=ip)
    return c


def slide_warnings(case: Case) -> list[dict[str, Any]]:
    from .slides import quality_of
    out = []
    for slide in case.slides:
        for w in quality_of(slide).get("warnings") or []:
            out.append({"slide_id": slide.id, "label": slide.label, "code": w.get("code"), "message": w.get("message", "")})
    return out


def submit(session: Session, user: User, c: Consultation, *, acknowledge_warnings: bool = False,
           ip: str | None = None, now: dt.datetime | None = None,
           skip_slide_check_for_demo_seed: bool = False) -> list[dict[str, Any]]:
    """Send the request to triage at the receiving institution; returns the acknowledged warnings.

    ``skip_slide_check_for_demo_seed`` exists only for :func:`pathology_hub.demo.ensure_demo_consultations`.
    """
    _begin(user, c, "submit")
    now = _now(now)
    warnings: list[dict[str, Any]] = []
    if not skip_slide_check_for_demo_seed:
        slides = c.case.slides
        not_ready = slide_facts.blocking(c.case)  # each blocking slide with its reason (web layer translates)
        if not slides or not_ready:
            named = "; ".join(f"{b['label']} ({b['filename']}): {b['status']}, {b['reason_code']}" for b in not_ready)
            raise ValidationFailed("Every slide of the case must be ready (and there must be at least one) "
                                   "before the request is submitted. Blocking: %(named)s.",
                                   code="slides_not_ready", details={"slides": not_ready},
                                   params={"named": named or "-"})
        warnings = slide_warnings(c.case)
        if warnings and not acknowledge_warnings:
            raise ValidationFailed("The slides have quality-check warnings; acknowledge them to submit.",
                                   code="warnings_not_acknowledged", details={"warnings": warnings})
    expert = c.requested_expert
    receiving = expert.institution if expert else _receiving_for(c.requesting_institution)
    c.receiving_institution_id = receiving.id
    c.receiving_institution = receiving
    c.submitted_at = now
    _move(session, c, "submit", user, now=now, ip=ip,
          comment="; ".join(f"{w['label'] or w['slide_id']}: {w['code']}" for w in warnings),
          details={"receiving": receiving.code, "warnings_acknowledged": [w["code"] for w in warnings]})
    paged: set[int] = set()
    if c.priority is Priority.FROZEN:  # intraoperative: page the on-call pathologists now
        paged = {p.user_id for p in frozen.page(session, c, now)}
    if expert is not None:
        _assign_to(session, c, expert, user, now=now, ip=ip, reason="requested expert")
    else:
        notifications.notify(session, [u for u in triage_staff(session, receiving.id) if u.id not in paged],
                             "triage_new", c)
    return warnings


# ---------------------------------------------------------------- triage and assignment
def load_of(session: Session, user_id: int) -> int:
    return session.scalar(select(func.count(Consultation.id)).where(
        Consultation.assignee_id == user_id, Consultation.state.in_(ACTIVE_ASSIGNED))) or 0


def _pathologists(session: Session, c: Consultation) -> list[User]:
    """Active pathologists of the receiving institution who have not declined the request."""
    if c.receiving_institution_id is None:
        return []
    declined = decliners(session, c.id)
    return [u for u in session.scalars(select(User).where(
        User.institution_id == c.receiving_institution_id, User.role == Role.PATHOLOGIST, User.active.is_(True)))
        if u.id not in declined]


def has_subspecialty(user: User, code: str) -> bool:
    return code in subspecialties.split_stored(user.subspecialties)


def specialists(session: Session, c: Consultation) -> list[User]:
    """Pathologists with the request's subspecialty (everyone when none is named), least loaded first."""
    pool = _pathologists(session, c)
    if c.subspecialty:
        pool = [u for u in pool if has_subspecialty(u, c.subspecialty)]
    return sorted(pool, key=lambda u: (load_of(session, u.id), u.id))


def no_subspecialty_match(session: Session, c: Consultation) -> bool:
    """A subspecialty is named but no available pathologist has it: triage falls back to everyone."""
    return bool(c.subspecialty) and not specialists(session, c) and bool(_pathologists(session, c))


def candidates(session: Session, c: Consultation) -> list[User]:
    """Whom triage may assign: every available pathologist of the receiving institution, those with
    the subspecialty first, each group least loaded first.  Never empty while the institution has
    an active pathologist who has not declined, so a request cannot get stuck in triage."""
    matching = specialists(session, c)
    ids = {u.id for u in matching}
    others = sorted((u for u in _pathologists(session, c) if u.id not in ids),
                    key=lambda u: (load_of(session, u.id), u.id))
    return matching + others


def _assign_to(session: Session, c: Consultation, assignee: User, actor: User, *, now: dt.datetime,
               ip: str | None, reason: str = "") -> None:
    c.assignee_id = assignee.id
    c.assignee = assignee
    c.assigned_at = now
    _move(session, c, "assign", actor, now=now, ip=ip, reason=reason, details={"assignee": assignee.username})
    notifications.notify(session, [assignee], "assigned", c)


def assign(session: Session, user: User, c: Consultation, assignee_id: Any = None, *, ip: str | None = None,
           now: dt.datetime | None = None) -> User:
    """Assign to the named pathologist, or (no id) to the least-loaded one with the subspecialty; when
    nobody has it, to the least-loaded pathologist of the institution (the event says so)."""
    _begin(user, c, "assign")
    now = _now(now)
    pool = candidates(session, c)
    if assignee_id in (None, ""):
        if not pool:
            raise ValidationFailed("No pathologist of the receiving institution is available.",
                                   code="no_pathologist_available")
        assignee = pool[0]
        reason = "auto" if not c.subspecialty or has_subspecialty(assignee, c.subspecialty) \
            else "auto_no_subspecialty_match"
    else:
        assignee = next((u for u in pool if str(u.id) == str(assignee_id)), None)
        if assignee is None:
            all_ids = {u.id for u in session.scalars(select(User).where(
                User.institution_id == c.receiving_institution_id, User.role == Role.PATHOLOGIST))}
            raise ValidationFailed("The assignee must be an active pathologist of the receiving institution "
                                   "who has not declined this request.", code="invalid_assignee",
                                   details={"field": "assignee_id", "known": str(assignee_id).isdigit()
                                            and int(assignee_id) in all_ids})
        reason = "" if not c.subspecialty or has_subspecialty(assignee, c.subspecialty) else "no_subspecialty_match"
    _assign_to(session, c, assignee, user, now=now, ip=ip, reason=reason)
    return assignee


def accept(session: Session, user: User, c: Consultation, *, ip: str | None = None,
           now: dt.datetime | None = None) -> None:
    _begin(user, c, "accept")
    now = _now(now)
    c.accepted_at = now
    _move(session, c, "accept", user, now=now, ip=ip)


def decline(session: Session, user: User, c: Consultation, reason: Any, *, ip: str | None = None,
            now: dt.datetime | None = None) -> None:
    """Back to triage; the decliner is never offered it again and loses access."""
    _begin(user, c, "decline")
    reason = _text(reason, "reason", required=True)
    now = _now(now)
    c.assignee_id = None
    c.assignee = None
    c.assigned_at = None
    _move(session, c, "decline", user, now=now, ip=ip, reason=reason)
    notifications.notify(session, [u for u in triage_staff(session, c.receiving_institution_id) if u.id != user.id],
                         "triage_new", c)


# ---------------------------------------------------------------- review
def request_info(session: Session, user: User, c: Consultation, comment: Any, *, ip: str | None = None,
                 now: dt.datetime | None = None) -> None:
    """Ask the referring side for more slides, recuts, stains or history; the TAT clock pauses."""
    _begin(user, c, "request_info")
    comment = _text(comment, "comment", required=True)
    now = _now(now)
    turnaround.pause(c, now)
    _move(session, c, "request_info", user, now=now, ip=ip, comment=comment)
    notifications.notify(session, requester_side(session, c), "info_requested", c)


def answer_info(session: Session, user: User, c: Consultation, comment: Any, *, ip: str | None = None,
                now: dt.datetime | None = None) -> None:
    """The referring side answers (new slides are uploaded to the case as usual); the clock resumes."""
    _begin(user, c, "answer_info")
    comment = _text(comment, "comment", required=True)
    now = _now(now)
    turnaround.resume(c, now)
    _move(session, c, "answer_info", user, now=now, ip=ip, comment=comment)
    notifications.notify(session, [c.assignee], "info_answered", c)


def escalate(session: Session, user: User, c: Consultation, preliminary_opinion: Any, *, expert_id: Any = None,
             ip: str | None = None, now: dt.datetime | None = None) -> Consultation:
    """Open a linked request at the next tier; the preliminary opinion travels with it."""
    _begin(user, c, "escalate")
    opinion = _text(preliminary_opinion, "preliminary_opinion", required=True)
    now = _now(now)
    district = c.receiving_institution
    expert = _validate_expert(session, district, expert_id)
    receiving = expert.institution if expert else _receiving_for(district)
    child = Consultation(case_id=c.case_id, parent_id=c.id, state=S.DRAFT, priority=c.priority,
                         requesting_institution_id=district.id, question=c.question, subspecialty=c.subspecialty,
                         preliminary_opinion=opinion, requested_expert_id=expert.id if expert else None,
                         created_by_id=user.id, created_at=now, updated_at=now)
    session.add(child)
    session.flush()
    session.refresh(child)
    _move(session, c, "escalate", user, now=now, ip=ip, comment=opinion, details={"child_id": child.id})
    child.receiving_institution_id = receiving.id
    child.receiving_institution = receiving
    child.submitted_at = now
    _move(session, child, "submit", user, now=now, ip=ip, details={"receiving": receiving.code, "parent_id": c.id})
    paged: set[int] = set()
    if child.priority is Priority.FROZEN:  # the surgeon is still waiting: page the next tier's on-call now
        paged = {p.user_id for p in frozen.page(session, child, now)}
    if expert is not None:
        _assign_to(session, child, expert, user, now=now, ip=ip, reason="requested expert")
    else:
        notifications.notify(session, [u for u in triage_staff(session, receiving.id) if u.id not in paged],
                             "escalated", child)
    return child


def mark_reported(session: Session, user: User, c: Consultation, *, ip: str | None = None,
                  now: dt.datetime | None = None) -> None:
    """The report is signed; an escalated parent follows its child.  Nothing of the report is copied:
    pages read the result from the report versions (:func:`results.result_in_force`).

    Called only by :func:`pathology_hub.domain.reports.sign` (internal transition)."""
    _begin(user, c, "mark_reported")
    now = _now(now)
    c.reported_at = now
    _move(session, c, "mark_reported", user, now=now, ip=ip)
    parent = c.parent
    if parent is not None and parent.state is S.ESCALATED:
        parent.reported_at = now
        _move(session, parent, "child_reported", user, now=now, ip=ip, details={"child_id": c.id})
        notifications.notify(session, [parent.assignee], "reported", parent)


def return_result(session: Session, user: User, c: Consultation, advice: Any = "", *, ip: str | None = None,
                  now: dt.datetime | None = None) -> None:
    """The result and follow-up advice flow back to the referring centre (双向转诊)."""
    _begin(user, c, "return_result")
    advice = _text(advice, "follow_up_advice")
    now = _now(now)
    chain = [c]
    if c.parent is not None and c.parent.state is S.REPORTED:
        chain.append(c.parent)
    for item in chain:
        item.follow_up_advice = advice or item.follow_up_advice
        item.returned_at = now
        _move(session, item, "return_result", user, now=now, ip=ip, comment=advice)
    root = chain[-1]
    notifications.notify(session, [root.case.requesting_clinician, root.case.created_by], "returned", root)


def _chain_below(session: Session, c: Consultation) -> list[Consultation]:
    """``c`` and every escalation below it, top down."""
    out, frontier = [], [c]
    while frontier:
        item = frontier.pop(0)
        out.append(item)
        frontier.extend(children_of(session, item))
    return out


def _version_number(value: Any) -> int:
    if isinstance(value, bool) or value in (None, ""):
        raise ValidationFailed("Say which version of the result you have read (field \"version\").",
                               code="missing_field", details={"field": "version"})
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValidationFailed("version must be an integer.", code="invalid_field",
                               details={"field": "version"}) from None


class ResultVersionOutdated(Conflict):
    """The clinician read an older version than the one now in force (an amendment came in between)."""

    code = "result_version_outdated"


class NoSignedResult(Conflict):
    code = "no_signed_result"


def acknowledge(session: Session, user: User, c: Consultation, version: Any = None, *, ip: str | None = None,
                now: dt.datetime | None = None) -> ResultAcknowledgement:
    """"I have read this result": the requesting clinician acknowledges one report version, explicitly.

    ``version`` is the number of the version the clinician read; it must be the one in force,
    otherwise 409 ``result_version_outdated`` (an amendment was signed while they were reading).
    The acknowledgement is recorded for that version on the referral the centre made, and every
    returned request of the chain moves to acknowledged.  ``acknowledged_at`` keeps the first
    acknowledgement (the turnaround stage ends there); later ones are in ``result_acknowledgements``.
    """
    _begin(user, c, "acknowledge")
    number = _version_number(version)
    root = results.root_of(c)
    v = results.version_in_force(session, root)
    if v is None:
        raise NoSignedResult("There is no signed result to acknowledge yet.")
    if number != v.number:
        raise ResultVersionOutdated(
            f"Version {number} is not the result in force: version {v.number} replaced it. "
            f"Read version {v.number} and acknowledge it.", details={"version": number, "in_force": v.number})
    now = _now(now)
    ack = ResultAcknowledgement(consultation_id=root.id, version_id=v.id, user_id=user.id, at=now)
    session.add(ack)
    for item in _chain_below(session, root):
        if item.state is S.RETURNED:
            item.acknowledged_at = item.acknowledged_at or now
            _move(session, item, "acknowledge", user, now=now, ip=ip, comment=f"v{v.number}",
                  details={"version": v.number, "report_id": v.report_id})
    return ack


def result_amended(session: Session, user: User, c: Consultation, version: Any, *, ip: str | None = None,
                   now: dt.datetime | None = None) -> list[Consultation]:
    """A new version of ``c``'s report was signed: the whole chain waits for a new acknowledgement.

    Internal (fired by :func:`pathology_hub.domain.reports.sign`); returns the requests moved."""
    now = _now(now)
    moved = []
    for item in _chain_below(session, results.root_of(c)):
        if item.state in TRANSITIONS["result_amended"].sources:
            _move(session, item, "result_amended", user, now=now, ip=ip, reason=version.reason,
                  comment=f"v{version.number} ({version.kind})",
                  details={"version": version.number, "kind": version.kind, "report_id": version.report_id})
            moved.append(item)
    return moved


def cancel(session: Session, user: User, c: Consultation, reason: Any, *, ip: str | None = None,
           now: dt.datetime | None = None) -> None:
    """Withdraw the request before reporting; open escalations go with it."""
    _begin(user, c, "cancel")
    reason = _text(reason, "reason", required=True)
    now = _now(now)
    for item in [c, *children_of(session, c)]:
        if item.state in BEFORE_REPORT:
            item.cancel_reason = reason
            _move(session, item, "cancel", user, now=now, ip=ip, reason=reason)


# ---------------------------------------------------------------- reading
def children_of(session: Session, c: Consultation) -> list[Consultation]:
    return list(session.scalars(select(Consultation).where(Consultation.parent_id == c.id).order_by(Consultation.id)))


def history(session: Session, c: Consultation) -> list[ConsultationEvent]:
    return list(session.scalars(select(ConsultationEvent).where(ConsultationEvent.consultation_id == c.id)
                                .order_by(ConsultationEvent.at, ConsultationEvent.id)))


def get(session: Session, user: User, consultation_id: int) -> Consultation:
    c = session.get(Consultation, consultation_id)
    if c is None:
        raise NotFound("No such consultation.")
    policy.ensure(user, "consultation.view", c)
    return c


def for_case(session: Session, user: User, case: Case) -> list[Consultation]:
    policy.ensure(user, "case.view", case)
    items = session.scalars(select(Consultation).where(Consultation.case_id == case.id).order_by(Consultation.id))
    return [c for c in items if policy.can(user, "consultation.view", c)]


def actions_for(user: User, c: Consultation) -> list[str]:
    """The transitions this user may perform now (for buttons and the API)."""
    return [name for name in allowed_from(c.state) if policy.can(user, f"consultation.{name}", c)]


def flag_overdue(session: Session, now: dt.datetime | None = None) -> list[int]:
    """Notify the receiving institution's triage staff once about each open request past its target."""
    now = _now(now)
    flagged = []
    open_states = (S.TRIAGE, S.ASSIGNED, S.IN_REVIEW, S.ESCALATED)
    for c in session.scalars(select(Consultation).where(Consultation.state.in_(open_states),
                                                        Consultation.overdue_notified_at.is_(None))):
        tat = turnaround.status(c, now)
        if tat is None or tat.flag != "overdue" or c.receiving_institution_id is None:
            continue
        c.overdue_notified_at = now
        notifications.notify(session, [u for u in triage_staff(session, c.receiving_institution_id)
                                       if u.role is Role.PATHOLOGIST], "overdue", c)
        audit.record(session, "consultation.overdue", object_type="consultation", object_id=c.id,
                     case_id=c.case_id, actor_name="system", details={"fraction": round(tat.fraction, 3)})
        flagged.append(c.id)
    return flagged


def escalation_experts(session: Session, c: Consultation) -> list[User]:
    """Active pathologists along the receiving institution's referral chain: whom ``c`` may be escalated to."""
    chain = [i.id for i in referral_chain(c.receiving_institution)] if c.receiving_institution else []
    return [u for u in session.scalars(select(User).where(User.institution_id.in_(chain), User.active.is_(True)))
            if u.role is Role.PATHOLOGIST]
