"""The audit trail is a hash chain: intact after real use, serialised under concurrency, and
`flask audit verify` names the first broken link after tampering with the database."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest
from sqlalchemy import select, text

from pathology_hub.domain import audit
from pathology_hub.domain.audit import GENESIS, verify_chain
from pathology_hub.models import AuditEvent, User
from tests.conftest import ROOT


def _raw(sql: str, **params) -> None:
    """Tamper like someone with database access would: plain SQL, bypassing the ORM guard."""
    from pathology_hub.db import get_engine
    with get_engine().begin() as conn:
        conn.execute(text(sql), params)


def _ids(db) -> list[int]:
    db.expire_all()
    return list(db.scalars(select(AuditEvent.id).order_by(AuditEvent.seq)))


def _realistic_actions(client_for, db) -> None:
    tech, admin = client_for("tech"), client_for("admin")
    client_for().login("tech", "wrong password")  # login.failed
    clinician = db.scalar(select(User).where(User.username == "clinician"))
    case = tech.post("/api/v1/cases", json={"case_number": "AUD-1", "patient_pseudo_id": "P-AUD-1",
                                            "requesting_clinician_id": clinician.id})
    assert case.status_code == 201, case.get_data(as_text=True)
    cons = tech.post(f"/api/v1/cases/{case.json['id']}/consultations", json={"question": "Margins clear?"})
    assert cons.status_code == 201, cons.get_data(as_text=True)
    assert tech.post(f"/api/v1/consultations/{cons.json['id']}/cancel",
                     json={"reason": "wrong case"}).status_code == 200
    assert tech.patch(f"/api/v1/cases/{case.json['id']}", json={"clinical_history": "复发？"}).status_code == 200
    inst = admin.get("/admin/users")
    assert inst.status_code == 200
    from pathology_hub.models import Institution
    comm1 = db.scalar(select(Institution).where(Institution.code == "COMM1"))
    resp = admin.post("/admin/users", data={"csrf_token": admin.csrf, "username": "aud_new", "full_name": "A U",
                                            "password": "a-long-password-1", "role": "technician",
                                            "institution_id": comm1.id})
    assert resp.status_code == 302
    assert admin.get("/admin/audit.csv").status_code == 200  # audit.exported


def test_chain_is_intact_after_realistic_use(app, client_for, world):
    _realistic_actions(client_for, world)
    rows = world.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    actions = {r.action for r in rows}
    assert {"login.failed", "audit.exported"} <= actions and len(rows) >= 8, actions
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.entry_hash for a, b in zip(rows, rows[1:]))
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert f"audit chain intact: {len(rows)} entries checked" in result.output


def test_entries_of_one_flush_are_chained_in_insertion_order(world):
    added = [audit.record(world, "test.multi", object_type="x", object_id=i, details={"i": i}) for i in range(5)]
    world.commit()
    assert [e.seq for e in added] == sorted(e.seq for e in added)
    assert all(b.prev_hash == a.entry_hash for a, b in zip(added, added[1:]))
    # Entries flushed by an autoflush in the middle of a unit of work continue the same chain.
    first = audit.record(world, "test.autoflush", details={"n": 1})
    world.scalar(select(AuditEvent.id).limit(1))  # autoflush
    second = audit.record(world, "test.autoflush", details={"n": 2})
    world.commit()
    assert second.prev_hash == first.entry_hash and second.seq == first.seq + 1
    assert verify_chain(world).intact


def test_orm_guard_still_refuses_updates_and_deletes(world):
    entry = audit.record(world, "test.guard")
    world.commit()
    entry.details = '{"rewritten": true}'
    with pytest.raises(RuntimeError, match="append-only"):
        world.flush()
    world.rollback()
    world.delete(entry)
    with pytest.raises(RuntimeError, match="append-only"):
        world.flush()
    world.rollback()


def test_concurrent_appends_from_two_threads_keep_one_chain(app, world):
    from pathology_hub.db import SessionLocal
    factory = SessionLocal.session_factory
    per_thread, errors = 25, []
    barrier = threading.Barrier(2)

    def writer(name: str) -> None:
        session = factory()
        try:
            barrier.wait()
            for i in range(per_thread):
                audit.record(session, "test.concurrent", actor_name=name, details={"i": i})
                audit.record(session, "test.concurrent", actor_name=name, details={"i": i, "second": True})
                session.flush()          # chained here, under the lock ...
                time.sleep(0.002)        # ... and the other thread must not chain from the same head meanwhile
                session.commit()
                time.sleep(0.003)        # give the other writer a chance to take the lock
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))
            session.rollback()
        finally:
            session.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("t1", "t2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    world.expire_all()
    rows = world.scalars(select(AuditEvent).where(AuditEvent.action == "test.concurrent")
                         .order_by(AuditEvent.seq)).all()
    assert len(rows) == 2 * 2 * per_thread
    # Both threads really interleaved (otherwise this test would prove nothing).
    names = [r.actor_name for r in rows]
    assert sum(1 for a, b in zip(names, names[1:]) if a != b) >= 2
    report = verify_chain(world)
    assert report.intact, report
    assert report.checked == world.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1))


def _verify(app, *extra):
    return app.test_cli_runner().invoke(args=["audit", "verify", *extra])


def _some_entries(world, n: int = 6) -> list[int]:
    for i in range(n):
        audit.record(world, "test.entry", object_type="case", object_id=i, details={"i": i})
        world.commit()
    return _ids(world)


def test_modified_entry_is_found(app, world):
    ids = _some_entries(world)
    assert _verify(app).exit_code == 0
    _raw("UPDATE audit_events SET details = :d WHERE id = :id", d='{"i": 99}', id=ids[3])
    result = _verify(app)
    assert result.exit_code == 1, result.output
    assert f"BROKEN at entry id {ids[3]} " in result.output and "hash mismatch" in result.output
    assert verify_chain(world).broken_id == ids[3]


def test_deleted_entry_is_found(app, world):
    ids = _some_entries(world)
    _raw("DELETE FROM audit_events WHERE id = :id", id=ids[2])
    result = _verify(app)
    assert result.exit_code == 1, result.output
    # The entry after the gap no longer chains from its predecessor.
    assert f"BROKEN at entry id {ids[3]} " in result.output and "prev_hash mismatch" in result.output


def test_changed_prev_hash_is_found_and_only_the_first_break_is_named(app, world):
    ids = _some_entries(world)
    _raw("UPDATE audit_events SET prev_hash = :h WHERE id = :id", h="f" * 64, id=ids[4])
    _raw("UPDATE audit_events SET actor_name = 'mallory' WHERE id = :id", id=ids[1])
    result = _verify(app)
    assert result.exit_code == 1 and f"BROKEN at entry id {ids[1]} " in result.output, result.output
    _raw("UPDATE audit_events SET actor_name = NULL WHERE id = :id", id=ids[1])  # undo the second change
    result = _verify(app)
    assert result.exit_code == 1 and f"BROKEN at entry id {ids[4]} " in result.output, result.output


def test_reordered_entries_are_found(app, world):
    ids = _some_entries(world)
    # Swap the positions of two entries (seq is UNIQUE, so via a temporary value).
    _raw("UPDATE audit_events SET seq = -1 WHERE id = :id", id=ids[1])
    _raw("UPDATE audit_events SET seq = :s WHERE id = :id", s=2, id=ids[2])
    _raw("UPDATE audit_events SET seq = :s WHERE id = :id", s=3, id=ids[1])
    assert _verify(app).exit_code == 1


def test_verify_last_n_checks_only_the_tail(app, world):
    ids = _some_entries(world, 10)
    _raw("UPDATE audit_events SET details = '{}' WHERE id = :id", id=ids[-8])
    assert _verify(app, "--last", "7").exit_code == 0          # the damage is older than the tail
    result = _verify(app, "--last", "8")
    assert result.exit_code == 1 and f"entry id {ids[-8]} " in result.output


def test_real_flask_command_finds_the_break(app, settings, world):
    ids = _some_entries(world, 4)
    env = {**os.environ, "DATABASE_URL": settings.database_url, "STORAGE_URL": settings.storage_url,
           "QUEUE_URL": settings.queue_url, "INSTANCE_PATH": str(settings.instance_path),
           "SECRET_KEY": settings.secret_key, "FLASK_APP": "wsgi", "LOG_LEVEL": "WARNING"}
    flask = str(ROOT / ".venv" / "bin" / "flask")
    ok = subprocess.run([flask, "audit", "verify"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"audit chain intact: {len(ids)} entries checked" in ok.stdout
    _raw("UPDATE audit_events SET action = 'case.nothing_happened' WHERE id = :id", id=ids[2])
    bad = subprocess.run([flask, "audit", "verify"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"BROKEN at entry id {ids[2]} " in bad.stdout


def test_empty_trail_verifies(app, world):
    _raw("DELETE FROM audit_events")
    result = _verify(app)
    assert result.exit_code == 0 and "0 entries checked" in result.output
