"""The live session's state machine (domain/live.py) and the in-process fan-out (domain/live_hub.py)."""

from __future__ import annotations

import pytest

from pathology_hub.domain.errors import Forbidden, ValidationFailed
from pathology_hub.domain.live import LiveSession
from pathology_hub.domain.live_hub import LocalHub


def _session() -> LiveSession:
    s = LiveSession(7)
    s.join(1, "Zhang", "pathologist")
    s.join(2, "Chen", "pathologist")
    s.join(3, "Li", "technician")
    return s


def test_first_to_join_presents_and_only_the_presenter_moves_the_view():
    s = _session()
    assert s.presenter_id == 1
    out = s.set_view(1, {"slideId": 4, "x": 0.5, "y": 0.25, "magnification": 20, "rotation": 90, "junk": "x"})
    assert out == [{"type": "view", "view": {"slideId": 4, "x": 0.5, "y": 0.25, "magnification": 20.0,
                                             "rotation": 90.0}, "presenterId": 1}]
    with pytest.raises(Forbidden) as exc:
        s.set_view(2, {"x": 0.1})
    assert exc.value.code == "live_not_presenter"
    with pytest.raises(ValidationFailed):
        s.set_view(1, {"x": float("nan")})


def test_control_is_requested_then_handed_over():
    s = _session()
    s.request_control(3)
    assert s.requests == [3]
    with pytest.raises(Forbidden):
        s.hand_over(2, 3)          # only the presenter hands over
    s.hand_over(1, 3)
    assert s.presenter_id == 3 and s.requests == []
    with pytest.raises(ValidationFailed):
        s.hand_over(3, 99)         # not in the session


def test_a_dropped_connection_that_comes_back_is_no_leave():
    s = _session()
    s.join(2, "Chen", "pathologist")     # reconnect races the old socket
    assert s.leave(2) == []              # old socket closes: still present, nobody told
    assert s.is_present(2)
    assert s.leave(2)[0]["type"] == "state"
    assert not s.is_present(2)


def test_a_leaving_presenter_hands_control_to_who_asked_first():
    s = _session()
    s.request_control(3)
    s.leave(1)
    assert s.presenter_id == 3
    s.leave(3)
    assert s.presenter_id == 2


def test_snapshot_round_trip():
    s = _session()
    s.request_control(2)
    s.set_view(1, {"x": 0.3})
    again = LiveSession.from_snapshot(s.snapshot())
    assert again.snapshot() == s.snapshot()


def test_hub_fans_out_and_keeps_state_until_the_last_leaves():
    hub = LocalHub()
    a, b = hub.subscribe("c:1"), hub.subscribe("c:1")
    other = hub.subscribe("c:2")
    hub.update("c:1", 1, lambda s: s.join(10, "A", "pathologist"))
    hub.update("c:1", 1, lambda s: s.join(11, "B", "technician"))
    hub.presenter_says("c:1", 1, lambda s: s.set_view(10, {"x": 0.5}))
    got = [a.get(0.1) for _ in range(3)]
    assert [m["type"] for m in got] == ["state", "state", "view"]
    assert [b.get(0.1)["type"] for _ in range(3)] == ["state", "state", "view"]
    assert other.get(0.01) is None
    assert hub.state("c:1", 1).view == {"x": 0.5}
    hub.update("c:1", 1, lambda s: s.leave(10))
    hub.update("c:1", 1, lambda s: s.leave(11))
    assert hub.state("c:1", 1).participants == {}
    assert [a.get(0.1)["type"] for _ in range(2)] == ["state", "state"]
    a.close()
    assert a.get(0.01) is None and hub.subscriber_count("c:1") == 1
