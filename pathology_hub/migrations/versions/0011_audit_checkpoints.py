"""audit_checkpoints: signed checkpoints of the audit chain's head

The hash chain alone is keyless (a rewrite with recomputed hashes, or a cut-off
tail, still verified). Checkpoints sign the head with the deployment's signing key.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 14:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_checkpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('entry_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('algorithm', sa.String(length=32), nullable=False),
    sa.Column('key_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('signature', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_checkpoints')),
    sa.UniqueConstraint('seq', name=op.f('uq_audit_checkpoints_seq'))
    )


def downgrade() -> None:
    op.drop_table('audit_checkpoints')
