"""Who may do what: the one place where authorisation is decided.

Web handlers call :func:`ensure` (through the ``authorize`` decorator) and never
compare roles or institutions themselves.  An object the user may not *see*
answers 404 rather than 403, so ids of other institutions' cases leak nothing.
"""

from __future__ import annotations

from typing import Any, Callable

from ..models import Case, Role, Slide, Tier, User
from .errors import Forbidden, NotFound

Rule = Callable[[User, Any], bool]
_RULES: dict[str, Rule] = {}
#: Actions whose denial is reported as "not found" (the object itself is hidden).
_HIDDEN_WHEN_DENIED: set[str] = set()


def rule(action: str, *, hide: bool = False) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        _RULES[action] = fn
        if hide:
            _HIDDEN_WHEN_DENIED.add(action)
        return fn
    return register


def can(user: User | None, action: str, obj: Any = None) -> bool:
    if user is None or not getattr(user, "is_authenticated", False) or not user.active:
        return False
    try:
        check = _RULES[action]
    except KeyError:
        raise LookupError(f"no policy rule for action {action!r}") from None
    return bool(check(user, obj))


def ensure(user: User | None, action: str, obj: Any = None) -> None:
    """Raise 404 (object hidden) or 403 unless ``user`` may do ``action``.

    The exception carries ``refusal = (action, obj)``: the web layer audits refusals about
    objects (sampled, ``domain/refusal_audit.py``) so that probing is visible."""
    if can(user, action, obj):
        return
    raise _refused(user, action, obj)


def _refused(user: User | None, action: str, obj: Any) -> NotFound | Forbidden:
    exc: NotFound | Forbidden
    if action in _HIDDEN_WHEN_DENIED:
        exc = NotFound("Not found.")
    elif (view_action := next((a for cls, a in _VIEW_ACTION.items() if isinstance(obj, cls)), None)) \
            and not can(user, view_action, obj):
        exc = NotFound("Not found.")  # refusing with 403 would confirm that the object exists
    else:
        exc = Forbidden("You do not have permission to do this.")
    exc.refusal = (action, obj)  # type: ignore[attr-defined]
    return exc


#: For each kind of object, the action that decides whether it is visible at all.
_VIEW_ACTION: dict[type, str] = {Case: "case.view", Slide: "slide.view"}


def actions() -> list[str]:
    return sorted(_RULES)


# ---------------------------------------------------------------- administration
@rule("admin.manage")
def _admin(user: User, _obj: Any) -> bool:
    return user.role is Role.ADMIN


# ---------------------------------------------------------------- cases
def case_visible(user: User, case: Case) -> bool:
    """The originating centre always sees its own cases; the consultation chain widens this later."""
    if case.institution_id == user.institution_id and user.role is not Role.ADMIN:
        return True
    return any(grant(user, case) for grant in _CASE_ACCESS_GRANTS)


#: Extension point: who else may see a case. ``bootstrap.py`` registers the consultation
#: workflow's grant; nothing registers itself on import, so the answer never depends on import order.
_CASE_ACCESS_GRANTS: list[Callable[[User, Case], bool]] = []


def register_case_access(grant: Callable[[User, Case], bool]) -> None:
    """Add a grant (``bootstrap.py`` adds the consultation workflow's); adding one twice is harmless."""
    if grant not in _CASE_ACCESS_GRANTS:
        _CASE_ACCESS_GRANTS.append(grant)


@rule("case.list")
def _case_list(user: User, _obj: Any) -> bool:
    return user.role in (Role.TECHNICIAN, Role.PATHOLOGIST, Role.CLINICIAN)


@rule("case.create")
def _case_create(user: User, _obj: Any) -> bool:
    return user.role is Role.TECHNICIAN and user.institution.tier is Tier.COMMUNITY


@rule("case.view", hide=True)
def _case_view(user: User, case: Case) -> bool:
    return case_visible(user, case)


@rule("case.edit")
def _case_edit(user: User, case: Case) -> bool:
    return case_visible(user, case) and user.role is Role.TECHNICIAN and case.institution_id == user.institution_id


@rule("slide.upload")
def _slide_upload(user: User, case: Case) -> bool:
    return _case_edit(user, case)


@rule("slide.view", hide=True)
def _slide_view(user: User, slide: Slide) -> bool:
    return slide.deleted_at is None and case_visible(user, slide.case)


@rule("slide.withdraw")
def _slide_withdraw(user: User, slide: Slide) -> bool:
    """Technicians of the uploading centre (whether the slide is still withdrawable: domain/slide_facts.py)."""
    return _case_edit(user, slide.case)


@rule("slide.edit")
def _slide_edit(user: User, slide: Slide) -> bool:
    """Stain and block/part label: technicians of the uploading centre, before submission (slide_facts.py)."""
    return _case_edit(user, slide.case)


@rule("slide.retry")
def _slide_retry(user: User, slide: Slide) -> bool:
    """Re-running a failed slide's processing shows no patient data: its centre's technicians
    and the platform administrators (who operate storage and workers) may do it."""
    return slide.deleted_at is None and (user.role is Role.ADMIN or _case_edit(user, slide.case))


@rule("slide.view_label")
def _slide_label(user: User, slide: Slide) -> bool:
    """The label shows patient identity: the uploading centre and pathologists on the case only."""
    if not _slide_view(user, slide):
        return False
    if slide.case.institution_id == user.institution_id and user.role is not Role.ADMIN:
        return True
    return user.role is Role.PATHOLOGIST


@rule("patient.view_name")
def _patient_name(user: User, case: Case) -> bool:
    return case.institution_id == user.institution_id and user.role is not Role.ADMIN


# ---------------------------------------------------------------- annotations
from ..models import Annotation  # noqa: E402  (kept next to the rules that use it)

#: Extension point: the report workflow tells whether a case's report is signed (default: never).
_REPORT_SIGNED: list[Callable[[Case], bool]] = []


#: The real predicate (a signed report version exists), installed by ``bootstrap.py``.
_DEFAULT_REPORT_SIGNED: list[Callable[[Case], bool]] = []


def install_report_signed(predicate: Callable[[Case], bool]) -> None:
    """Install the real "is this case's report signed?" predicate (the report workflow does this)."""
    _DEFAULT_REPORT_SIGNED[:] = [predicate]
    _REPORT_SIGNED[:] = [predicate]


def register_report_signed(predicate: Callable[[Case], bool] | None) -> None:
    """Override the predicate (tests); ``None`` restores the default: the installed real one, else "not signed"."""
    _REPORT_SIGNED[:] = [predicate] if predicate is not None else list(_DEFAULT_REPORT_SIGNED)


def report_signed(case: Case) -> bool:
    return bool(_REPORT_SIGNED) and bool(_REPORT_SIGNED[0](case))


@rule("annotation.view")
def _annotation_view(user: User, slide: Slide) -> bool:
    """Annotations are a pathologist's working opinion: technicians and clinicians see them with the signed report."""
    if not _slide_view(user, slide):
        return False
    if user.role in (Role.TECHNICIAN, Role.CLINICIAN):
        return report_signed(slide.case)
    return True


@rule("annotation.create")
def _annotation_create(user: User, slide: Slide) -> bool:
    return user.role is Role.PATHOLOGIST and _slide_view(user, slide)


@rule("annotation.import")
def _annotation_import(user: User, slide: Slide) -> bool:
    return _annotation_create(user, slide)


@rule("annotation.edit")
def _annotation_edit(user: User, annotation: Annotation) -> bool:
    """Only the author changes (or deletes) an annotation, and only while they can still see the slide."""
    return (annotation.deleted_at is None and user.role is Role.PATHOLOGIST and annotation.author_id == user.id
            and _slide_view(user, annotation.slide))


@rule("annotation.delete")
def _annotation_delete(user: User, annotation: Annotation) -> bool:
    return _annotation_edit(user, annotation)


# ---------------------------------------------------------------- consultations
# Who may act on a consultation request; which transition is allowed in which state is
# decided by domain/consultations.py (the state machine), which calls these rules.
from ..models.consultations import Consultation  # noqa: E402

_VIEW_ACTION[Consultation] = "consultation.view"


def _requester_side(user: User, c: Consultation) -> bool:
    """Technicians and clinicians of the centre the case comes from."""
    return user.role in (Role.TECHNICIAN, Role.CLINICIAN) and c.case.institution_id == user.institution_id


def _is_assignee(user: User, c: Consultation) -> bool:
    return c.assignee_id is not None and c.assignee_id == user.id


@rule("consultation.view", hide=True)
def _consultation_view(user: User, c: Consultation) -> bool:
    return case_visible(user, c.case)


@rule("consultation.create")
def _consultation_create(user: User, case: Case) -> bool:
    return (case_visible(user, case) and user.role in (Role.TECHNICIAN, Role.CLINICIAN)
            and case.institution_id == user.institution_id)


@rule("consultation.submit")
def _consultation_submit(user: User, c: Consultation) -> bool:
    return _requester_side(user, c)


@rule("consultation.cancel")
def _consultation_cancel(user: User, c: Consultation) -> bool:
    return _requester_side(user, c)


@rule("consultation.assign")
def _consultation_assign(user: User, c: Consultation) -> bool:
    """No separate triage role: pathologists and admins of the receiving institution triage."""
    return user.role in (Role.PATHOLOGIST, Role.ADMIN) and c.receiving_institution_id == user.institution_id


@rule("consultation.accept")
def _consultation_accept(user: User, c: Consultation) -> bool:
    return _is_assignee(user, c)


@rule("consultation.decline")
def _consultation_decline(user: User, c: Consultation) -> bool:
    return _is_assignee(user, c)


@rule("consultation.request_info")
def _consultation_request_info(user: User, c: Consultation) -> bool:
    return _is_assignee(user, c)


@rule("consultation.escalate")
def _consultation_escalate(user: User, c: Consultation) -> bool:
    return _is_assignee(user, c)


@rule("consultation.mark_reported")
def _consultation_mark_reported(user: User, c: Consultation) -> bool:
    return _is_assignee(user, c)


@rule("consultation.return_result")
def _consultation_return(user: User, c: Consultation) -> bool:
    return _is_assignee(user, c)


@rule("consultation.answer_info")
def _consultation_answer_info(user: User, c: Consultation) -> bool:
    """The centre answers; for an escalation the district pathologist who escalated may answer too."""
    return _requester_side(user, c) or (c.parent is not None and _is_assignee(user, c.parent))


@rule("consultation.acknowledge")
def _consultation_acknowledge(user: User, c: Consultation) -> bool:
    case = c.case
    return (user.role is Role.CLINICIAN and case.institution_id == user.institution_id
            and case.requesting_clinician_id in (None, user.id))


@rule("worklist.view")
def _worklist_view(user: User, _obj: Any) -> bool:
    return True


@rule("notification.list")
def _notification_list(user: User, _obj: Any) -> bool:
    return True


@rule("turnaround.view")
def _turnaround_view(user: User, _obj: Any) -> bool:
    return user.role is Role.ADMIN


# ---------------------------------------------------------------- reports
# The report of a consultation: pathologists along the chain see drafts; the referring
# centre (technicians, clinicians) sees a report only once a version is signed.
from ..models.reports import Report  # noqa: E402

_VIEW_ACTION[Report] = "report.view"


def _report_has_signed_version(report: Report) -> bool:
    return any(v.status in ("signed", "superseded") for v in report.versions)


@rule("report.view", hide=True)
def _report_view(user: User, report: Report) -> bool:
    c = report.consultation
    if not _consultation_view(user, c):
        return False
    if user.role in (Role.TECHNICIAN, Role.CLINICIAN):
        return _requester_side(user, c) and _report_has_signed_version(report)
    return True


@rule("report.view_drafts")
def _report_view_drafts(user: User, report: Report) -> bool:
    return user.role in (Role.PATHOLOGIST, Role.ADMIN) and _consultation_view(user, report.consultation)


@rule("report.create")
def _report_create(user: User, c: Consultation) -> bool:
    return user.role is Role.PATHOLOGIST and _is_assignee(user, c)


@rule("report.edit")
def _report_edit(user: User, report: Report) -> bool:
    return user.role is Role.PATHOLOGIST and _is_assignee(user, report.consultation)


@rule("report.sign")
def _report_sign(user: User, report: Report) -> bool:
    """Only the assigned pathologist signs (for an escalation: the expert on the child request)."""
    return user.role is Role.PATHOLOGIST and _is_assignee(user, report.consultation)


@rule("report.cosign")
def _report_cosign(user: User, report: Report) -> bool:
    """A second pathologist with access to the case records concurrence (never the signer: checked in the domain)."""
    return user.role is Role.PATHOLOGIST and _report_view(user, report)


@rule("report.amend")
def _report_amend(user: User, report: Report) -> bool:
    """Addenda and amendments: the original signer or the consultation's assignee."""
    if user.role is not Role.PATHOLOGIST or not _report_view(user, report):
        return False
    first = report.versions[0] if report.versions else None
    return _is_assignee(user, report.consultation) or (first is not None and first.signed_by_id == user.id)


# ---------------------------------------------------------------- audit trail
@rule("audit.view")
def _audit_view(user: User, _obj: Any) -> bool:
    """The whole consortium's trail (search, CSV export, chain check): administrators only.

    Entries hold ids, codes and case numbers, never patient names, so no per-institution filter is needed.
    """
    return user.role is Role.ADMIN
