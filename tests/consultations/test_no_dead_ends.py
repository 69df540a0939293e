"""No dead ends: every non-terminal state of the consultation state machine offers at least one
action to someone who can reach the request, and that action is accepted (issue 15, item 3)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pathology_hub.domain import consultations as svc
from pathology_hub.domain import policy
from pathology_hub.models import Slide, SlideStatus, User
from pathology_hub.models.consultations import Consultation, ConsultationState as S

TERMINAL = {S.ACKNOWLEDGED, S.CANCELLED}
#: Which action the walk performs when several are offered: progress first, cancelling last.
PREFERENCE = ["submit", "assign", "accept", "answer_info", "request_info", "return_result", "acknowledge",
              "escalate", "decline", "cancel"]
FIELDS = {"decline": {"reason": "walk"}, "cancel": {"reason": "walk"}, "request_info": {"comment": "walk"},
          "answer_info": {"comment": "walk"}, "escalate": {"preliminary_opinion": "walk"},
          "submit": {"acknowledge_warnings": True}, "acknowledge": {"version": 1}}


@pytest.fixture
def ready_slide(world, demo_case):
    """A ready slide row on the demo case (the walk is about the state machine, not about tiling)."""
    slide = Slide(uid="0" * 31 + "1", case_id=demo_case.id, label="S1", status=SlideStatus.READY,
                  original_filename="walk.svs")
    world.add(slide)
    world.commit()
    return slide


def _setup(state: S, make_consultation, db) -> tuple[Consultation, list[Consultation]]:
    """A request in ``state`` with what that state implies (assignee, signed result, escalation child)."""
    from tests.consultations.conftest import signed_version_row
    assignee = "pathologist" if state not in (S.DRAFT, S.TRIAGE) else None
    c = make_consultation(state, assignee=assignee)
    if state in (S.REPORTED, S.RETURNED, S.ACKNOWLEDGED):
        signed_version_row(db, c, c.assignee, "walk diagnosis")
        db.commit()
    children = []
    if state is S.ESCALATED:
        children.append(make_consultation(S.TRIAGE, receiving="UNIV", parent=c))
    return c, children


def _offers(db, c: Consultation) -> dict[str, list[str]]:
    """Every user who can see the request, with the actions offered to them."""
    out = {}
    for user in db.scalars(select(User).order_by(User.id)):
        if policy.can(user, "consultation.view", c):
            out[user.username] = svc.actions_for(user, c)
    return out


def test_the_walk_covers_every_state():
    assert set(S) - TERMINAL == {S.DRAFT, S.TRIAGE, S.ASSIGNED, S.IN_REVIEW, S.INFO_REQUESTED, S.ESCALATED,
                                 S.REPORTED, S.RETURNED}
    for state in TERMINAL:
        assert svc.allowed_from(state) == []


@pytest.mark.parametrize("state", [s for s in S], ids=lambda s: s.value)
def test_every_state_offers_a_way_on(state, world, make_consultation, client_for, ready_slide):
    c, children = _setup(state, make_consultation, world)
    offers = _offers(world, c)
    assert offers, f"nobody can see a request in state {state.value}"
    offered = {name: acts for name, acts in offers.items() if acts}
    if state in TERMINAL:
        assert not offered, (state, offered)
        return
    assert offered, f"dead end: no one who can reach a {state.value} request has an action ({offers})"
    if state is S.ESCALATED:
        # The parent waits for its child; the child must itself offer a way on (triage at UNIV).
        child_offers = {n: a for n, a in _offers(world, children[0]).items() if a}
        assert "assign" in sum(child_offers.values(), []), child_offers
    # Perform the most forward-moving action offered, as that user, over the API: it must be accepted.
    name, username = min(((a, u) for u, acts in offered.items() for a in acts), key=lambda p: PREFERENCE.index(p[0]))
    resp = client_for(username).post(f"/api/v1/consultations/{c.id}/{name.replace('_', '-')}",
                                     json=FIELDS.get(name, {}))
    assert resp.status_code == 200, (state.value, username, name, resp.get_data(as_text=True))
    world.expire_all()
    assert world.get(Consultation, c.id).state is not state or name == "assign"


def test_a_draft_with_a_rejected_slide_is_not_a_dead_end(world, make_consultation, client_for, ready_slide,
                                                          demo_case):
    """The case from the issue: one rejected upload used to block the request for good."""
    rejected = Slide(uid="0" * 31 + "2", case_id=demo_case.id, label="S2", status=SlideStatus.REJECTED,
                     reject_code="not_an_image", reject_message="not an image", original_filename="bad.svs")
    world.add(rejected)
    world.commit()
    c = make_consultation(S.DRAFT)
    tech = client_for("tech")
    refused = tech.post(f"/api/v1/consultations/{c.id}/submit", json={"acknowledge_warnings": True})
    assert refused.status_code == 422 and refused.json["error"]["code"] == "slides_not_ready"
    assert [s["slide_id"] for s in refused.json["error"]["details"]["slides"]] == [rejected.id]
    # The way out is offered on the slide itself...
    listing = {s["id"]: s for s in tech.get(f"/api/v1/cases/{demo_case.id}/slides").json["slides"]}
    assert listing[rejected.id]["actions"]["withdraw"] is True
    assert tech.post(f"/api/v1/slides/{rejected.id}/withdraw", json={"confirm": True}).status_code == 200
    # ...and after it the request moves on.
    assert tech.post(f"/api/v1/consultations/{c.id}/submit", json={"acknowledge_warnings": True}).json["state"] \
        == "triage"
