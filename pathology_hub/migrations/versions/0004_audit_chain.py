"""audit chain: seq, prev_hash and entry_hash on audit_events; existing rows are chained in id order

Revision ID: 0004
Revises: 0003
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def _canonical_time(value) -> str:
    if isinstance(value, str):  # defensive: a driver that returns text
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _digest(row, seq: int, prev_hash: str) -> str:
    # Frozen copy of pathology_hub.domain.audit.entry_digest (a stored contract: it must never change).
    doc = {"v": 1, "seq": seq, "at": _canonical_time(row.at), "actor_id": row.actor_id,
           "actor_name": row.actor_name, "institution_id": row.institution_id, "action": row.action,
           "object_type": row.object_type, "object_id": row.object_id, "case_id": row.case_id, "ip": row.ip,
           "details": row.details if row.details is not None else "{}", "prev_hash": prev_hash}
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


audit = sa.table(
    "audit_events",
    sa.column("id", sa.Integer()), sa.column("at", sa.DateTime(timezone=True)),
    sa.column("actor_id", sa.Integer()), sa.column("actor_name", sa.String()),
    sa.column("institution_id", sa.Integer()), sa.column("action", sa.String()),
    sa.column("object_type", sa.String()), sa.column("object_id", sa.String()),
    sa.column("case_id", sa.Integer()), sa.column("ip", sa.String()), sa.column("details", sa.Text()),
    sa.column("seq", sa.Integer()), sa.column("prev_hash", sa.String()), sa.column("entry_hash", sa.String()),
)


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("entry_hash", sa.String(length=64), nullable=True))

    # Chain the existing history in id order, so an upgraded database verifies.
    bind = op.get_bind()
    rows = bind.execute(sa.select(audit.c.id, audit.c.at, audit.c.actor_id, audit.c.actor_name,
                                  audit.c.institution_id, audit.c.action, audit.c.object_type,
                                  audit.c.object_id, audit.c.case_id, audit.c.ip, audit.c.details)
                        .order_by(audit.c.id)).all()
    prev = GENESIS
    updates = []
    for seq, row in enumerate(rows, start=1):
        entry_hash = _digest(row, seq, prev)
        updates.append({"row_id": row.id, "seq": seq, "prev_hash": prev, "entry_hash": entry_hash})
        prev = entry_hash
    if updates:
        bind.execute(audit.update().where(audit.c.id == sa.bindparam("row_id"))
                     .values(seq=sa.bindparam("seq"), prev_hash=sa.bindparam("prev_hash"),
                             entry_hash=sa.bindparam("entry_hash")),
                     updates)

    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("entry_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_audit_events_seq"), ["seq"])


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_audit_events_seq"), type_="unique")
        batch_op.drop_column("entry_hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("seq")
