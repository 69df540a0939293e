"""Who may join a live session, at the protocol level (a WebSocket client, no browser), plus the
SSE/POST fallback's refusals and the join/leave audit."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from pathology_hub.models import AuditEvent, Case, Institution, User
from pathology_hub.models.consultations import Consultation
from pathology_hub.models.consultations import ConsultationState as S


@pytest.fixture
def consultation(world, demo_case_id):
    users = {u.username: u for u in world.scalars(select(User))}
    insts = {i.code: i for i in world.scalars(select(Institution))}
    case = world.get(Case, demo_case_id)
    c = Consultation(case_id=case.id, state=S.IN_REVIEW, requesting_institution_id=case.institution_id,
                     receiving_institution_id=insts["DIST1"].id, assignee_id=users["pathologist"].id,
                     question="q", created_by_id=users["tech"].id)
    world.add(c)
    world.commit()
    return c.id


def _connect(live_server, client, consultation_id):
    import simple_websocket
    cookie = client.http.get_cookie("ph_session").value
    return simple_websocket.Client.connect(f"{live_server.replace('http', 'ws')}/consultations/{consultation_id}/live",
                                           headers={"Cookie": f"ph_session={cookie}"})


def test_outsider_is_refused_and_member_joins_audited(live_server, client_for, consultation, world):
    import simple_websocket
    outsider = _connect(live_server, client_for("tech2"), consultation)
    try:   # the error message, or (when the close overtakes it) the close frame with the same code
        first = json.loads(outsider.receive(timeout=5))
        assert first["type"] == "error" and first["code"] == "not_found"
    except simple_websocket.ConnectionClosed as closed:
        assert (closed.reason, closed.message) == (1008, "not_found")
    try:
        outsider.close()
    except simple_websocket.ConnectionClosed:
        pass   # the server closed it already

    member = _connect(live_server, client_for("pathologist"), consultation)
    hello = json.loads(member.receive(timeout=5))
    assert hello["type"] == "hello" and hello["state"]["presenterId"] == hello["me"]
    member.send(json.dumps({"type": "view", "view": {"x": 0.5, "y": 0.5}}))
    echoed = [json.loads(member.receive(timeout=5)) for _ in range(2)]
    assert {"state", "view"} <= {m["type"] for m in echoed}
    member.send("not json")
    assert json.loads(member.receive(timeout=5))["code"] == "live_bad_message"
    member.close()

    world.expire_all()
    for _ in range(100):   # the leave is recorded as the server notices the close
        actions = [a for (a,) in world.execute(select(AuditEvent.action).where(AuditEvent.action.like("live.%")))]
        if "live.left" in actions:
            break
        import time
        time.sleep(0.1)
        world.expire_all()
    assert actions == ["live.joined", "live.left"]


def test_sse_refusals(client_for, consultation):
    assert client_for("tech2").get(f"/consultations/{consultation}/live/events").status_code == 404
    resp = client_for("tech").post(f"/consultations/{consultation}/live/send", json={"type": "request"},
                                   headers={"Accept": "application/json"})
    assert resp.status_code == 422 and resp.get_json()["error"]["code"] == "live_not_joined"
