"""The web-facing domain functions own their unit of work (issue #17): a refusal leaves nothing
behind, a success is committed, and the objects handed back stay usable after the commit."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pathology_hub.domain import administration, unit_of_work
from pathology_hub.domain.errors import Conflict, ValidationFailed
from pathology_hub.models import AuditEvent, Institution, User


def _admin(world) -> User:
    return unit_of_work.current().scalar(select(User).where(User.username == "admin"))


def test_a_refusal_rolls_the_whole_unit_back(world):
    """Whatever the block staged before the refusal is gone, flushed or not."""
    admin = _admin(world)
    name = admin.full_name
    with pytest.raises(Conflict):
        with unit_of_work.transaction() as session:
            admin.full_name = "Changed"
            session.flush()
            session.add(Institution(code="HALF", name="Half made", tier="community"))
            raise Conflict("refused")
    assert admin.full_name == name
    world.expire_all()
    assert world.scalar(select(User.full_name).where(User.id == admin.id)) == name
    assert world.scalar(select(Institution).where(Institution.code == "HALF")) is None
    assert not unit_of_work.current().new and not unit_of_work.current().dirty


def test_an_unknown_institution_code_is_refused_with_its_code(world):
    before = world.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
    with pytest.raises(ValidationFailed) as refused:
        administration.create_user(institution_code="NOPE", username="ghost", full_name="G", password="x" * 12,
                                   role="clinician", actor=_admin(world))
    assert refused.value.code == "unknown_institution"
    world.expire_all()
    assert world.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1)) == before


def test_a_success_is_committed_and_the_object_stays_attached(world):
    inst = administration.create_institution(code="NEWC", name="New centre", tier="community",
                                             actor=_admin(world))
    assert inst.name == "New centre" and inst in unit_of_work.current()  # no DetachedInstanceError
    world.expire_all()
    assert world.scalar(select(Institution.name).where(Institution.code == "NEWC")) == "New centre"


def test_a_time_zone_refusal_changes_nothing(world):
    inst = administration.institutions(by_code=True)[0]
    zone = inst.time_zone
    with pytest.raises(ValidationFailed):
        administration.set_institution_time_zone(inst, "Mars/Olympus", actor=_admin(world))
    assert inst.time_zone == zone
    world.expire_all()
    assert world.get(Institution, inst.id).time_zone == zone
