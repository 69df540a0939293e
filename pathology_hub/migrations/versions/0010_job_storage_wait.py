"""jobs: storage_wait_since and retry_at, for jobs waiting out an object-storage outage

A storage outage no longer consumes a job's attempts: the job waits (queued) with
back-off until storage returns or the outage outlasts STORAGE_OUTAGE_HORIZON_SECONDS.
These columns say since when it waits (the case page shows it) and when it is due.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('storage_wait_since', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('retry_at')
        batch_op.drop_column('storage_wait_since')
