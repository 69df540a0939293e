"""institution_time_zone: the IANA zone in which an institution's users read times

Times stay stored in UTC; pages show them in the viewing user's institution's zone.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 16:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('institutions') as batch_op:
        batch_op.add_column(sa.Column('time_zone', sa.String(length=64), nullable=False,
                                      server_default='Asia/Shanghai'))


def downgrade() -> None:
    with op.batch_alter_table('institutions') as batch_op:
        batch_op.drop_column('time_zone')
