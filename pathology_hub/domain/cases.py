"""Creating and finding cases: the unit a community centre refers for consultation."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..models import Case, Priority, Role, Sex, User
from . import audit, policy, unit_of_work
from .errors import Conflict, NotFound, ValidationFailed

#: The choices a case form offers (the template lists their values).
SEXES = tuple(Sex)
PRIORITIES = tuple(Priority)

TEXT_LIMITS = {"case_number": 64, "patient_pseudo_id": 64, "patient_name": 200, "specimen_type": 120,
               "specimen_site": 120, "clinical_history": 10_000}


def _clean(data: dict[str, Any], key: str, required: bool = False) -> str:
    value = data.get(key)
    value = "" if value is None else str(value).strip()
    if required and not value:
        raise ValidationFailed("%(field)s is required.", code="missing_field", params={"field": key},
                               details={"field": key})
    if len(value) > TEXT_LIMITS.get(key, 200):
        raise ValidationFailed("%(field)s is longer than %(max)s characters.", code="field_too_long",
                               details={"field": key, "max": TEXT_LIMITS[key]})
    return value


def _choice(enum_cls: type, value: Any, field: str, default: Any) -> Any:
    if value in (None, ""):
        return default
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum_cls)
        raise ValidationFailed("%(field)s must be one of: %(allowed)s.", code="invalid_choice",
                               details={"field": field}, params={"allowed": allowed}) from None


def _parse_case_fields(session: Session, user: User, data: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "patient_pseudo_id": _clean(data, "patient_pseudo_id", required=True),
        "patient_name": _clean(data, "patient_name") or None,
        "clinical_history": _clean(data, "clinical_history"),
        "specimen_type": _clean(data, "specimen_type"),
        "specimen_site": _clean(data, "specimen_site"),
        "sex": _choice(Sex, data.get("sex"), "sex", Sex.UNKNOWN),
        "priority": _choice(Priority, data.get("priority"), "priority", Priority.ROUTINE),
    }
    birth = data.get("birth_date")
    fields["birth_date"] = None
    if birth:
        try:
            fields["birth_date"] = dt.date.fromisoformat(str(birth))
        except ValueError:
            raise ValidationFailed("Birth date must be YYYY-MM-DD.", code="invalid_date",
                                   details={"field": "birth_date"}) from None
        if fields["birth_date"] > dt.date.today():
            raise ValidationFailed("Birth date is in the future.", code="invalid_date",
                                   details={"field": "birth_date"})
    age = data.get("age_years")
    fields["age_years"] = None
    if age not in (None, ""):
        try:
            fields["age_years"] = int(age)
        except (TypeError, ValueError):
            raise ValidationFailed("Age must be a whole number of years.", code="invalid_age",
                                   details={"field": "age_years"}) from None
        if not 0 <= fields["age_years"] <= 130:
            raise ValidationFailed("Age must be between 0 and 130.", code="invalid_age",
                                   details={"field": "age_years"})
    clinician_id = data.get("requesting_clinician_id")
    fields["requesting_clinician_id"] = None
    if clinician_id not in (None, ""):
        clinician = session.get(User, int(clinician_id)) if str(clinician_id).isdigit() else None
        if (clinician is None or clinician.role is not Role.CLINICIAN
                or clinician.institution_id != user.institution_id):
            raise ValidationFailed("The requesting clinician must be a clinician of your centre.",
                                   code="invalid_clinician", details={"field": "requesting_clinician_id"})
        fields["requesting_clinician_id"] = clinician.id
    return fields


def create_case(session: Session, user: User, data: dict[str, Any], ip: str | None = None) -> Case:
    policy.ensure(user, "case.create")
    number = _clean(data, "case_number", required=True)
    if session.scalar(select(Case).where(Case.institution_id == user.institution_id, Case.case_number == number)):
        raise Conflict("Case number %(number)s already exists at your centre.", code="case_number_taken",
                       params={"number": number})
    case = Case(institution_id=user.institution_id, case_number=number, created_by_id=user.id,
                **_parse_case_fields(session, user, data))
    session.add(case)
    session.flush()
    audit.record(session, "case.create", actor=user, object_type="case", object_id=case.id, case_id=case.id, ip=ip)
    return case


def update_case(session: Session, user: User, case: Case, data: dict[str, Any], ip: str | None = None) -> Case:
    policy.ensure(user, "case.edit", case)
    for key, value in _parse_case_fields(session, user, data).items():
        setattr(case, key, value)
    audit.record(session, "case.update", actor=user, object_type="case", object_id=case.id, case_id=case.id, ip=ip)
    return case


def get_case(session: Session, user: User, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound("No such case.")
    policy.ensure(user, "case.view", case)
    return case


def list_cases(session: Session, user: User, *, query: str | None = None, limit: int = 200) -> list[Case]:
    """Cases visible to the user; the consultation workflow widens this along the referral chain."""
    policy.ensure(user, "case.list")
    stmt = select(Case).where(Case.institution_id == user.institution_id).order_by(Case.created_at.desc())
    if query:
        like = f"%{query.strip()}%"
        stmt = stmt.where(or_(Case.case_number.ilike(like), Case.patient_pseudo_id.ilike(like)))
    cases = list(session.scalars(stmt.limit(limit)))
    return [c for c in cases if policy.can(user, "case.view", c)]


# ---------------------------------------------------------------- units of work for the web
# Each owns its unit of work (see ``unit_of_work``): a handler calls one and holds no session.
def find_case(case_id: int) -> Case | None:
    """The case with this id, or None (unchecked: ``authorize`` applies the policy next)."""
    return unit_of_work.get(Case, case_id)


def visible_cases(user: User, *, query: str | None = None) -> list[Case]:
    """:func:`list_cases` in the current unit of work."""
    return list_cases(unit_of_work.current(), user, query=query)


def open_case(user: User, data: dict[str, Any], ip: str | None = None) -> Case:
    """:func:`create_case`, committed."""
    with unit_of_work.transaction() as session:
        return create_case(session, user, data, ip=ip)


def edit_case(user: User, case: Case, data: dict[str, Any], ip: str | None = None) -> Case:
    """:func:`update_case`, committed."""
    with unit_of_work.transaction() as session:
        return update_case(session, user, case, data, ip=ip)


def home_cases(user: User, limit: int = 50) -> list[Case]:
    """The cases on the user's home page: the latest visible ones, none for a role that lists no cases."""
    if not policy.can(user, "case.list"):
        return []
    return list_cases(unit_of_work.current(), user, limit=limit)


def clinicians_of(user: User) -> list[User]:
    """Active clinicians of the user's centre: who may be named as a case's requesting clinician."""
    return list(unit_of_work.current().scalars(select(User).where(
        User.institution_id == user.institution_id, User.role == Role.CLINICIAN, User.active.is_(True))))
