"""Tiles served by both paths (WSGI fast path with token, Flask full-policy path) end up as
sampled ``slide.viewed`` audit entries: one per user, slide and window, with the zoom range."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import event, select

from pathology_hub.domain import view_audit
from pathology_hub.domain.audit import verify_chain
from pathology_hub.models import AuditEvent, Case, Slide, User
from pathology_hub.web import view_audit_hook


@pytest.fixture
def ready_slide(app, world, client_for, synthetic_slide, ready_slide):
    """The demo case's slide, ready (tiled once per session, see tests/fixtures/slides.py);
    returns (tech client, slide JSON, case id)."""
    case_id = world.scalar(select(Case.id).where(Case.case_number == "DEMO-2026-001"))
    tech = client_for("tech")
    ready_slide(case_id, synthetic_slide)
    info = tech.get(f"/api/v1/cases/{case_id}/slides").json["slides"][0]
    assert info["status"] == "ready"
    view_audit.configure(3600)  # nothing becomes due on its own during the test
    return tech, info, case_id


def _viewed(db) -> list[AuditEvent]:
    db.expire_all()
    return db.scalars(select(AuditEvent).where(AuditEvent.action == "slide.viewed").order_by(AuditEvent.seq)).all()


def _tile(info: dict, level: int, col: int, row: int, *, token: bool) -> str:
    url = info["dzi_url"].replace("slide.dzi", f"slide_files/{level}/{col}_{row}.jpeg")
    return url if token else url.split("?", 1)[0]


def test_tiles_of_both_paths_make_one_sampled_entry(app, world, ready_slide, flask_tile_calls):
    tech, info, case_id = ready_slide
    calls = flask_tile_calls
    for level, col, row in [(10, 0, 0), (11, 1, 1), (12, 2, 1)]:  # fast path (token + session cookie)
        resp = tech.get(_tile(info, level, col, row, token=True))
        assert resp.status_code == 200 and resp.data[:2] == b"\xff\xd8"
    assert calls == [], "token requests are answered by the WSGI fast path"
    for level, col, row in [(9, 0, 0), (11, 0, 1)]:  # no token: the Flask endpoint with the full policy
        assert tech.get(_tile(info, level, col, row, token=False)).status_code == 200
    assert calls == [1, 1]
    # a cached tile (304) and a refused one are not views
    etag = tech.get(_tile(info, 12, 2, 1, token=True)).headers["ETag"]
    assert tech.get(_tile(info, 12, 2, 1, token=True), headers={"If-None-Match": etag}).status_code == 304
    assert app.test_client().get(_tile(info, 8, 0, 0, token=False)).status_code == 404
    assert _viewed(world) == [], "nothing is written per tile"

    assert view_audit.maybe_flush(force=True) == 1
    [entry] = _viewed(world)
    tech_user = world.scalar(select(User).where(User.username == "tech"))
    slide = world.scalar(select(Slide).where(Slide.uid == info["uid"]))
    assert (entry.actor_id, entry.actor_name, entry.object_type, entry.object_id, entry.case_id) == \
        (tech_user.id, "tech", "slide", str(slide.id), case_id)
    details = json.loads(entry.details)
    assert details["levels"] == [9, 12] and details["tiles"] == 6  # 3 + 2 + the repeated 12/2_1
    assert details["since"] <= details["until"]
    assert verify_chain(world).intact
    assert view_audit.maybe_flush(force=True) == 0


def test_unknown_session_and_slide_are_resolved_at_flush_time(app, world, ready_slide, client_for):
    """A token issued by another worker process: the ids are looked up once, when flushing."""
    _, info, case_id = ready_slide
    tech = client_for("tech")  # a second login of the same user: another session token
    fresh = tech.get(f"/api/v1/cases/{case_id}/slides").json["slides"][0]
    view_audit_hook._users.clear()
    view_audit_hook._slides.clear()
    for level in (10, 11):
        assert tech.get(_tile(fresh, level, 0, 0, token=True)).status_code == 200
    assert view_audit.default_aggregator().pending() == 1
    view_audit_hook.flush_at_exit()  # what atexit runs
    [entry] = _viewed(world)
    assert entry.actor_name == "tech" and entry.case_id == case_id
    assert json.loads(entry.details)["levels"] == [10, 11] and json.loads(entry.details)["tiles"] == 2
    assert verify_chain(world).intact


def test_the_fast_path_makes_no_database_query_per_tile(app, world, ready_slide):
    from pathology_hub.db import get_engine
    tech, info, _ = ready_slide
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)
    url = _tile(info, 11, 1, 1, token=True)
    assert tech.get(url).status_code == 200  # warm the reader
    event.listen(get_engine(), "before_cursor_execute", count)
    try:
        for _ in range(20):
            assert tech.get(url).status_code == 200
    finally:
        event.remove(get_engine(), "before_cursor_execute", count)
    assert statements == []
    assert json.loads(_flush_one(world).details)["tiles"] == 21


def _flush_one(db) -> AuditEvent:
    assert view_audit.maybe_flush(force=True) == 1
    return _viewed(db)[-1]


def test_window_elapsed_flushes_on_a_later_tile(app, world, ready_slide):
    tech, info, _ = ready_slide
    agg = view_audit.default_aggregator()
    view_audit.configure(0.2)
    agg.discard()
    assert tech.get(_tile(info, 10, 0, 0, token=True)).status_code == 200
    assert _viewed(world) == []
    time.sleep(0.3)
    assert tech.get(_tile(info, 11, 0, 0, token=True)).status_code == 200  # this tile triggers the flush
    [entry] = _viewed(world)
    assert json.loads(entry.details)["tiles"] == 2


def test_noting_a_tile_is_cheap(app, world, ready_slide):
    """The hook on the hot path: two dict lookups and one note under a lock (plus a clock read)."""
    tech, info, _ = ready_slide
    user = world.scalar(select(User).where(User.username == "tech"))
    token = next(iter(k for k, v in view_audit_hook._users.items() if v == user.id))
    n = 50_000
    start = time.process_time()  # CPU time: what the hook costs, not how busy the machine is
    for i in range(n):
        view_audit_hook.on_tile(token, 10 + (i & 1), info["uid"])
    per_tile = (time.process_time() - start) / n
    assert per_tile < 20e-6, f"{per_tile * 1e6:.1f} µs per tile"
    assert json.loads(_flush_one(world).details)["tiles"] == n
