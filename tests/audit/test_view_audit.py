"""Sampled slide-view auditing: cheap in-memory notes, one `slide.viewed` entry per user, slide and window."""

from __future__ import annotations

import datetime as dt
import json
import threading
from contextlib import contextmanager

from sqlalchemy import select

from pathology_hub.domain import view_audit
from pathology_hub.domain.audit import verify_chain
from pathology_hub.domain.view_audit import ViewAggregator
from pathology_hub.models import AuditEvent, User

T0 = dt.datetime(2026, 11, 23, 8, 0, 0, tzinfo=dt.timezone.utc)


def _viewed(db) -> list[AuditEvent]:
    db.expire_all()
    return db.scalars(select(AuditEvent).where(AuditEvent.action == "slide.viewed").order_by(AuditEvent.seq)).all()


def _user(db, name: str) -> User:
    return db.scalar(select(User).where(User.username == name))


def test_window_not_elapsed_writes_nothing_then_one_entry_per_user_and_slide(world):
    agg = ViewAggregator(window_seconds=60)
    path, tech = _user(world, "pathologist"), _user(world, "tech")
    for i, level in enumerate([12, 14, 9, 16, 11]):
        agg.note_tile(path.id, 7, 3, level, at=T0 + dt.timedelta(seconds=i))
    agg.note_tile(tech.id, 7, 3, 13, at=T0 + dt.timedelta(seconds=30))
    agg.note_tile(path.id, 8, 3, 10, at=T0 + dt.timedelta(seconds=50))

    assert agg.flush(world, now=T0 + dt.timedelta(seconds=59)) == 0
    assert agg.pending() == 3 and _viewed(world) == []

    # 60 s after the first tile of (pathologist, slide 7) only that window is due.
    assert agg.flush(world, now=T0 + dt.timedelta(seconds=60)) == 1
    world.commit()
    [entry] = _viewed(world)
    assert (entry.actor_id, entry.actor_name, entry.object_type, entry.object_id, entry.case_id) == \
        (path.id, "pathologist", "slide", "7", 3)
    assert entry.institution_id == path.institution_id
    assert json.loads(entry.details) == {"levels": [9, 16], "tiles": 5, "since": T0.isoformat(),
                                         "until": (T0 + dt.timedelta(seconds=4)).isoformat()}
    assert agg.pending() == 2

    assert agg.flush(world, now=T0 + dt.timedelta(seconds=200)) == 2
    world.commit()
    details = {(e.actor_name, e.object_id): json.loads(e.details) for e in _viewed(world)[1:]}
    assert details[("tech", "7")]["levels"] == [13, 13] and details[("tech", "7")]["tiles"] == 1
    assert details[("pathologist", "8")]["tiles"] == 1
    assert agg.pending() == 0 and agg.flush(world, now=T0 + dt.timedelta(days=1)) == 0
    assert verify_chain(world).intact


def test_a_new_window_starts_after_a_flush(world):
    agg = ViewAggregator(window_seconds=60)
    uid = _user(world, "expert").id
    agg.note_tile(uid, 1, None, 5, at=T0)
    assert agg.flush(world, now=T0 + dt.timedelta(seconds=61)) == 1
    agg.note_tile(uid, 1, None, 6, at=T0 + dt.timedelta(seconds=70))
    assert agg.flush(world, now=T0 + dt.timedelta(seconds=100)) == 0
    assert agg.flush(world, now=T0 + dt.timedelta(seconds=130)) == 1
    world.commit()
    assert [json.loads(e.details)["levels"] for e in _viewed(world)] == [[5, 5], [6, 6]]


def test_force_flush_writes_everything_pending(world):
    agg = ViewAggregator(window_seconds=3600)
    uid = _user(world, "pathologist").id
    agg.note_tile(uid, 1, 2, 8)
    agg.note_tile(uid, 2, 2, 8)
    assert agg.flush(world) == 0
    assert agg.flush(world, force=True) == 2
    world.commit()
    assert {e.object_id for e in _viewed(world)} == {"1", "2"}


def test_notes_from_many_threads_are_all_counted(world):
    agg = ViewAggregator(window_seconds=60)
    uid = _user(world, "pathologist").id
    threads_n, per_thread = 8, 5000

    def hammer(k: int) -> None:
        for i in range(per_thread):
            agg.note_tile(uid, 1 + (i % 2), 4, (i + k) % 18)

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert agg.flush(world, force=True) == 2
    world.commit()
    entries = [json.loads(e.details) for e in _viewed(world)]
    assert sum(d["tiles"] for d in entries) == threads_n * per_thread
    assert all(d["levels"] == [0, 17] for d in entries)


def test_flush_running_while_tiles_are_noted_loses_nothing(world):
    agg = ViewAggregator(window_seconds=60)
    uid = _user(world, "pathologist").id
    stop = threading.Event()
    noted = [0]

    def viewer() -> None:
        while not stop.is_set():
            agg.note_tile(uid, 1, 4, 10)
            noted[0] += 1

    t = threading.Thread(target=viewer)
    t.start()
    written = 0
    for _ in range(20):
        written += agg.flush(world, force=True)
    stop.set()
    t.join()
    written += agg.flush(world, force=True)
    world.commit()
    assert sum(json.loads(e.details)["tiles"] for e in _viewed(world)) == noted[0]
    assert written == len(_viewed(world))


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_maybe_flush_opens_a_session_at_most_once_per_window(app, world):
    clock = FakeClock()
    agg = ViewAggregator(window_seconds=60, monotonic=clock)
    uid = _user(world, "pathologist").id
    opened = []
    from pathology_hub.db import session_scope

    @contextmanager
    def counting_scope():
        opened.append(1)
        with session_scope() as s:
            yield s

    agg.note_tile(uid, 5, None, 3, at=T0)
    assert agg.maybe_flush(now=T0 + dt.timedelta(seconds=90), session_factory=counting_scope) == 0
    assert opened == []                       # the window since start-up has not elapsed: no database access
    clock.t += 61
    assert agg.maybe_flush(now=T0 + dt.timedelta(seconds=90), session_factory=counting_scope) == 1
    assert opened == [1]
    agg.note_tile(uid, 5, None, 4, at=T0 + dt.timedelta(seconds=100))
    clock.t += 10
    assert agg.maybe_flush(now=T0 + dt.timedelta(seconds=500), session_factory=counting_scope) == 0
    assert opened == [1]
    assert len(_viewed(world)) == 1


def test_maybe_flush_keeps_notes_when_the_database_fails(app, world, caplog):
    clock = FakeClock()
    agg = ViewAggregator(window_seconds=60, monotonic=clock)
    uid = _user(world, "pathologist").id
    agg.note_tile(uid, 5, None, 3, at=T0)

    @contextmanager
    def broken_scope():
        raise ConnectionError("database is down")
        yield  # pragma: no cover

    clock.t += 61
    assert agg.maybe_flush(now=T0 + dt.timedelta(seconds=61), session_factory=broken_scope) == 0
    assert "could not write slide view audit entries" in caplog.text
    assert agg.pending() == 1
    agg.note_tile(uid, 5, None, 7, at=T0 + dt.timedelta(seconds=62))
    clock.t += 61
    assert agg.maybe_flush(now=T0 + dt.timedelta(seconds=200)) == 1
    [entry] = _viewed(world)
    assert json.loads(entry.details)["levels"] == [3, 7] and json.loads(entry.details)["tiles"] == 2


def test_module_level_api(app, world):
    uid = _user(world, "pathologist").id
    view_audit.note_tile(uid, 42, None, 12)
    view_audit.note_tile(uid, 42, None, 13)
    assert view_audit.flush(world, force=True) == 1
    world.commit()
    assert json.loads(_viewed(world)[0].details)["levels"] == [12, 13]
