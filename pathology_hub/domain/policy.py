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
    if can(user, action, obj):
        return
    if action in _HIDDEN_WHEN_DENIED:
        raise NotFound("Not found.")
    view_action = next((a for cls, a in _VIEW_ACTION.items() if isinstance(obj, cls)), None)
    if view_action and not can(user, view_action, obj):
        # Refusing with 403 would confirm that the object exists.
        raise NotFound("Not found.")
    raise Forbidden("You do not have permission to do this.")


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


#: Extension point: the consultation workflow registers who else may see a case.
_CASE_ACCESS_GRANTS: list[Callable[[User, Case], bool]] = []


def register_case_access(grant: Callable[[User, Case], bool]) -> None:
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


@rule("slide.delete")
def _slide_delete(user: User, slide: Slide) -> bool:
    return _case_edit(user, slide.case)


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
