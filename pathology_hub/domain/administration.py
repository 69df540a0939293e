"""The administrator's pages and API as units of work: list, find, create and change
institutions and users.

The rules are in :mod:`.accounts` (which takes the caller's session, for the CLI, the demo
and the tests); each function here is one whole unit of work around them, so a web handler
calls one function and holds no session. A refusal rolls the unit of work back.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..models import Institution, Role, Tier, User
from . import accounts, unit_of_work
from .errors import DomainError, ValidationFailed

#: The choices of the "new institution" and "new user" forms, in the models' order.
TIERS: tuple[Tier, ...] = tuple(Tier)
ROLES: tuple[Role, ...] = tuple(Role)


# ---------------------------------------------------------------- reading
def institutions(*, by_code: bool = False) -> list[Institution]:
    """Every institution, by tier then code (the admin page) or by code alone (the API, pickers)."""
    order = (Institution.code,) if by_code else (Institution.tier, Institution.code)
    return list(unit_of_work.current().scalars(select(Institution).order_by(*order)))


def users(*, by_username: bool = False) -> list[User]:
    """Every user, grouped by institution (the admin page) or by user name alone (the API)."""
    order = (User.username,) if by_username else (User.institution_id, User.username)
    return list(unit_of_work.current().scalars(select(User).order_by(*order)))


def find_institution(institution_id: int) -> Institution | None:
    return unit_of_work.get(Institution, institution_id)


def find_user(user_id: int) -> User | None:
    return unit_of_work.get(User, user_id)


# ---------------------------------------------------------------- changing
def create_institution(*, actor: User, **fields: Any) -> Institution:
    """A new institution (fields as :func:`accounts.create_institution` takes them)."""
    with unit_of_work.transaction() as session:
        return accounts.create_institution(session, actor=actor, **fields)


def create_user(*, actor: User, institution_id: int | None = None, institution_code: str | None = None,
                **fields: Any) -> User:
    """A new user of the institution named by id (the admin form) or by code (the API)."""
    with unit_of_work.transaction() as session:
        if institution_code is not None:
            inst = session.scalar(select(Institution).where(Institution.code == institution_code))
            if inst is None:
                raise ValidationFailed("Unknown institution code.", code="unknown_institution")
        else:
            inst = session.get(Institution, institution_id or 0)
            if inst is None:
                raise DomainError("Choose an institution.", code="institution_required")
        return accounts.create_user(session, institution=inst, actor=actor, **fields)


def set_institution_time_zone(inst: Institution, name: str, *, actor: User) -> None:
    with unit_of_work.transaction() as session:
        accounts.set_institution_time_zone(session, inst, name, actor=actor)


def set_report_language(inst: Institution, language: str | None, *, actor: User) -> None:
    with unit_of_work.transaction() as session:
        accounts.set_report_language(session, inst, language, actor=actor)


def set_institution_active(inst: Institution, active: bool, *, actor: User) -> None:
    with unit_of_work.transaction() as session:
        accounts.set_institution_active(session, inst, active, actor=actor)


def set_subspecialties(user: User, codes: str | list[str], *, actor: User) -> None:
    with unit_of_work.transaction() as session:
        accounts.set_subspecialties(session, user, codes, actor=actor)


def set_user_active(user: User, active: bool, *, actor: User) -> None:
    with unit_of_work.transaction() as session:
        accounts.set_user_active(session, user, active, actor=actor)
