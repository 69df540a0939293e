"""JSON shapes of the API, in one place so pages and API agree."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..domain import policy, timezones

if TYPE_CHECKING:  # only for the signatures: serialising reads attributes, it never queries
    from ..models import Case, Institution, User


def iso(value) -> str | None:
    """ISO 8601; datetimes always with their offset (SQLite returns naive UTC times)."""
    return timezones.iso(value)


def institution_json(inst: Institution) -> dict[str, Any]:
    return {"id": inst.id, "code": inst.code, "name": inst.name, "tier": inst.tier.value, "active": inst.active,
            "time_zone": inst.time_zone or timezones.DEFAULT_ZONE,
            "refers_to": [t.code for t in inst.refers_to]}


def user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "full_name": user.full_name, "role": user.role.value,
            "institution": user.institution.code, "active": user.active, "locale": user.locale,
            "subspecialties": [c.strip() for c in (user.subspecialties or "").split(",") if c.strip()]}


def case_json(case: Case, viewer: User) -> dict[str, Any]:
    data = {
        "id": case.id, "case_number": case.case_number, "institution": case.institution.code,
        "patient_pseudo_id": case.patient_pseudo_id, "sex": case.sex.value,
        "birth_date": iso(case.birth_date), "age_years": case.age_years,
        "clinical_history": case.clinical_history, "specimen_type": case.specimen_type,
        "specimen_site": case.specimen_site, "priority": case.priority.value,
        "requesting_clinician_id": case.requesting_clinician_id,
        "created_at": iso(case.created_at), "updated_at": iso(case.updated_at),
    }
    if policy.can(viewer, "patient.view_name", case):
        data["patient_name"] = case.patient_name
    return data
