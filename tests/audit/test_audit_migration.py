"""Migration 0004 chains the audit entries an older database already holds, so it verifies after upgrade."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from pathology_hub.domain import audit
from pathology_hub.domain.audit import GENESIS, verify_chain
from pathology_hub.migrate import downgrade, upgrade
from pathology_hub.models import AuditEvent

OLD = sa.table("audit_events", sa.column("at", sa.DateTime(timezone=True)), sa.column("actor_name", sa.String()),
               sa.column("action", sa.String()), sa.column("object_type", sa.String()),
               sa.column("object_id", sa.String()), sa.column("case_id", sa.Integer()),
               sa.column("ip", sa.String()), sa.column("details", sa.Text()))


def test_upgrade_chains_existing_rows_in_id_order(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0003")
    engine = sa.create_engine(url)
    start = dt.datetime(2026, 3, 1, 8, 30, tzinfo=dt.timezone.utc)
    with engine.begin() as conn:  # rows as the 0003-era application wrote them
        conn.execute(sa.insert(OLD), [
            {"at": start + dt.timedelta(minutes=i, microseconds=i * 1234), "actor_name": f"user{i % 3}",
             "action": ("login.ok", "case.create", "slide.delete")[i % 3], "object_type": "case",
             "object_id": str(i), "case_id": i if i % 2 else None, "ip": "10.0.0.%d" % i,
             "details": '{"reason": "复核 %d"}' % i} for i in range(40)])
    upgrade(url)

    with Session(engine) as s:
        rows = s.scalars(sa.select(AuditEvent).order_by(AuditEvent.id)).all()
        assert [r.seq for r in rows] == list(range(1, 41))
        assert rows[0].prev_hash == GENESIS and rows[5].details == '{"reason": "复核 5"}'
        report = verify_chain(s)
        assert report.intact and report.checked == 40, report
        # New entries continue the migrated chain.
        audit.record(s, "test.after_upgrade", details={"ok": True})
        s.commit()
        report = verify_chain(s)
        assert report.intact and report.checked == 41 and report.head_seq == 41

    with engine.begin() as conn:  # and tampering with a migrated row is detected
        conn.execute(sa.text("UPDATE audit_events SET ip = '10.9.9.9' WHERE id = 17"))
    with Session(engine) as s:
        assert verify_chain(s).broken_id == 17

    downgrade(url, "0003")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM audit_events")).scalar() == 41
        columns = {c["name"] for c in sa.inspect(conn).get_columns("audit_events")}
        assert not {"seq", "prev_hash", "entry_hash"} & columns
    engine.dispose()
