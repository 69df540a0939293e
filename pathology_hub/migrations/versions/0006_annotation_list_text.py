"""annotations: list_text, the row's serialised list properties, written with the row

Opening a slide with 10,000 polygons used to serialise every row in each web
process after a restart or a change (~0.7 s of CPU per process). Rows written
before this revision keep NULL and are serialised on read as before.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 09:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('list_text', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.drop_column('list_text')
