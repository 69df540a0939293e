"""Issue 16 (lower): the audit chain is anchored by checkpoints signed with the deployment key, so a
rewrite with recomputed hashes and a cut-off tail no longer pass `flask audit verify`."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select, text

from pathology_hub.domain import audit, audit_checkpoints
from pathology_hub.models import AuditEvent
from pathology_hub.models.audit_checkpoints import AuditCheckpoint


def _raw(sql: str, **params) -> None:
    from pathology_hub.db import get_engine
    with get_engine().begin() as conn:
        conn.execute(text(sql), params)


def _entries(world, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        audit.record(world, "test.entry", object_type="case", object_id=i, details={"i": i})
        world.commit()


def _identity():
    from pathology_hub.domain.report_documents import signing_identity
    return signing_identity()


def _checkpoint(world) -> AuditCheckpoint:
    cp = audit_checkpoints.write_checkpoint(world, _identity())
    world.commit()
    assert cp is not None
    return cp


def _verify(app):
    return app.test_cli_runner().invoke(args=["audit", "verify"])


def _rewrite_from(seq: int, new_details: str) -> None:
    """What someone with database access and the hashing code does: change one entry, then recompute
    entry_hash and prev_hash of it and of every later entry so the chain itself verifies again."""
    from pathology_hub.db import get_engine
    with get_engine().begin() as conn:
        rows = conn.execute(text("SELECT id, seq, at, actor_id, actor_name, institution_id, action, object_type, "
                                 "object_id, case_id, ip, details, prev_hash FROM audit_events WHERE seq >= :s "
                                 "ORDER BY seq"), {"s": seq}).mappings().all()
        prev = conn.execute(text("SELECT entry_hash FROM audit_events WHERE seq = :s"), {"s": seq - 1}).scalar() \
            or audit.GENESIS
        for row in rows:
            fields = dict(row)
            entry_id = fields.pop("id")
            if fields["seq"] == seq:
                fields["details"] = new_details
            at = fields["at"]
            fields["at"] = dt.datetime.fromisoformat(at) if isinstance(at, str) else at
            fields["prev_hash"] = prev
            prev = audit.entry_digest(**fields)
            conn.execute(text("UPDATE audit_events SET details = :d, prev_hash = :p, entry_hash = :h WHERE id = :id"),
                         {"d": fields["details"], "p": fields["prev_hash"], "h": prev, "id": entry_id})


def test_untouched_chain_with_checkpoints_verifies(app, world):
    _entries(world, 5)
    first = _checkpoint(world)
    _entries(world, 3, start=5)
    second = _checkpoint(world)
    assert second.seq > first.seq
    assert audit_checkpoints.write_checkpoint(world, _identity()) is None  # nothing new since
    result = _verify(app)
    assert result.exit_code == 0, result.output
    assert "signed checkpoints valid: 2 checked" in result.output and f"seq {second.seq}" in result.output
    report = audit_checkpoints.verify_checkpoints(world, _identity())
    assert report.ok and report.checked == 2
    world.expire_all()
    announced = [json.loads(d) for d in world.scalars(select(AuditEvent.details)
                                                      .where(AuditEvent.action == "audit.checkpoint"))]
    assert [a["checkpoint_seq"] for a in announced] == [first.seq, second.seq]


def test_rewrite_with_recomputed_hashes_is_detected(app, world):
    _entries(world, 6)
    cp = _checkpoint(world)
    _entries(world, 2, start=6)
    _rewrite_from(3, '{"i": 99}')
    world.expire_all()
    assert audit.verify_chain(world).intact  # the keyless chain alone is fooled: that was the finding
    result = _verify(app)
    assert result.exit_code == 1, result.output
    assert f"checkpoint at seq {cp.seq}" in result.output and "rewritten" in result.output


def test_truncated_tail_is_detected(app, world):
    _entries(world, 6)
    cp = _checkpoint(world)
    _entries(world, 3, start=6)
    _raw("DELETE FROM audit_events WHERE seq > :s", s=cp.seq - 2)
    world.expire_all()
    assert audit.verify_chain(world).intact
    result = _verify(app)
    assert result.exit_code == 1, result.output
    assert "cut off the end" in result.output


def test_altered_or_deleted_checkpoint_rows_are_detected(app, world):
    _entries(world, 4)
    cp = _checkpoint(world)
    _entries(world, 2, start=4)
    _checkpoint(world)
    # Bringing a checkpoint in line with a rewrite means changing its hash: the signature no longer holds.
    _raw("UPDATE audit_checkpoints SET entry_hash = :h WHERE id = :id", h="a" * 64, id=cp.id)
    result = _verify(app)
    assert result.exit_code == 1 and "signature invalid" in result.output, result.output
    # Deleting checkpoints instead: the trail announced them.
    _raw("DELETE FROM audit_checkpoints")
    result = _verify(app)
    assert result.exit_code == 1 and "checkpoint rows were deleted" in result.output, result.output


def test_no_checkpoint_over_a_chain_already_broken(app, world):
    import pytest
    _entries(world, 4)
    _checkpoint(world)
    _entries(world, 3, start=4)
    _raw("UPDATE audit_events SET details = '{}' WHERE seq = (SELECT MAX(seq) FROM audit_events)")
    world.expire_all()
    with pytest.raises(audit_checkpoints.ChainBroken):
        audit_checkpoints.write_checkpoint(world, _identity())
    world.rollback()
    result = app.test_cli_runner().invoke(args=["audit", "checkpoint"])
    assert result.exit_code == 1 and "refused" in result.output


def test_periodic_task_checkpoints_by_entries_and_by_time(app, world, settings):
    from pathology_hub.tasks import audit_checkpoint_task
    settings.audit_checkpoint_entries, settings.audit_checkpoint_minutes = 5, 10
    _entries(world, 2)
    first = audit_checkpoint_task.call_local()  # no checkpoint yet: the first one is due at once
    assert first is not None
    _entries(world, 3, start=2)
    assert audit_checkpoint_task.call_local() is None  # 3 new entries, 0 minutes: not due
    _entries(world, 2, start=5)
    second = audit_checkpoint_task.call_local()  # 5 new entries: due
    assert second is not None and second > first
    _entries(world, 1, start=7)
    assert audit_checkpoint_task.call_local() is None
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=11)
    assert audit_checkpoints.due(world, every_minutes=10, every_entries=5, now=later)
    assert not audit_checkpoints.due(world, every_minutes=10, every_entries=5)
    result = app.test_cli_runner().invoke(args=["audit", "checkpoint"])
    assert result.exit_code == 0 and "checkpoint written" in result.output
    assert _verify(app).exit_code == 0
