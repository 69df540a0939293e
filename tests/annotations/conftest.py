"""Fixtures for annotation tests: slides made directly in the database (no tiles needed),
a temporary consultation grant so DIST1/UNIV pathologists see the COMM1 demo case,
and a switch for the "report signed" predicate that a later issue will provide."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select

from pathology_hub.domain import policy
from pathology_hub.models import Case, Role, Slide, SlideStatus, User

WIDTH, HEIGHT, MPP = 10_000, 8_000, 0.25


def make_slide(db, *, width=WIDTH, height=HEIGHT, mpp=MPP, label="S1") -> int:
    case = db.scalar(select(Case).where(Case.case_number == "DEMO-2026-001"))
    tech = db.scalar(select(User).where(User.username == "tech"))
    desc = {"width": width, "height": height, "mpp_x": mpp, "mpp_y": mpp}
    slide = Slide(uid=uuid.uuid4().hex, case_id=case.id, label=label, status=SlideStatus.READY,
                  description=json.dumps(desc), created_by_id=tech.id)
    db.add(slide)
    db.commit()
    return slide.id


@pytest.fixture
def slide_id(world):
    return make_slide(world)


@pytest.fixture
def other_slide_id(world):
    return make_slide(world, label="S2")


@pytest.fixture
def consultation_grant(world):
    """Stand-in for the consultation workflow: DIST1 and UNIV pathologists may see COMM1's cases."""
    def grant(user, case):
        return user.role is Role.PATHOLOGIST and user.institution.code in ("DIST1", "UNIV") \
            and case.institution.code == "COMM1"
    policy.register_case_access(grant)
    yield grant
    policy._CASE_ACCESS_GRANTS.remove(grant)


@pytest.fixture
def report_signed():
    """Call ``report_signed(True)`` to make every report count as signed; restored afterwards."""
    def switch(value: bool) -> None:
        policy.register_report_signed((lambda case: True) if value else None)
    yield switch
    policy.register_report_signed(None)


def square(x, y, size=100):
    return {"type": "Polygon", "coordinates": [[[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]]}


def api(slide_id: int, suffix: str = "") -> str:
    return f"/api/v1/slides/{slide_id}/annotations{suffix}"
