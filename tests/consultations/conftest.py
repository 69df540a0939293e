"""Helpers for consultation tests: users by name, requests built directly in a given state."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pathology_hub.models import Case, Institution, User
from pathology_hub.models.consultations import Consultation, ConsultationState
from tests.ingest.conftest import synthetic_slide, tus_upload  # noqa: F401 - fixture re-export

__all__ = ["tus_upload", "synthetic_slide"]


@pytest.fixture
def users(world):
    return {u.username: u for u in world.scalars(select(User))}


@pytest.fixture
def insts(world):
    return {i.code: i for i in world.scalars(select(Institution))}


@pytest.fixture
def demo_case(world) -> Case:
    return world.scalar(select(Case).where(Case.case_number == "DEMO-2026-001"))


@pytest.fixture
def make_consultation(world, users, insts, demo_case):
    """A request on the demo case put straight into ``state`` (bypassing transitions), for table tests."""
    def make(state: ConsultationState, *, receiving: str = "DIST1", assignee: str | None = None,
             parent: Consultation | None = None, case: Case | None = None) -> Consultation:
        case = case or demo_case
        c = Consultation(case_id=case.id, state=state, requesting_institution_id=case.institution_id,
                         receiving_institution_id=None if state is ConsultationState.DRAFT else insts[receiving].id,
                         assignee_id=users[assignee].id if assignee else None, question="q",
                         created_by_id=users["tech"].id, parent_id=parent.id if parent else None)
        world.add(c)
        world.commit()
        return c
    return make
