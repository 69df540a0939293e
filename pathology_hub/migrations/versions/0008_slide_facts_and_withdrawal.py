"""slides: stain category and block/part label; withdrawal with a retention period

* ``stain_category`` (he, ihc, special, fluorescence, multiplex; NULL = unclassified free
  text) beside the existing ``stain`` (now the marker or stain name), and ``block_label``.
  Rows whose stain reads as H&E become category ``he``; others stay unclassified.
* ``withdrawn_by_id``, ``withdraw_reason``: a slide withdrawn before submission keeps its
  row (status ``withdrawn``, ``deleted_at`` set) for the audit trail.
* ``purge_after``, ``purged_at``: its stored objects are deleted only after the retention
  period (``WITHDRAWN_SLIDE_RETENTION_DAYS``), by the periodic purge.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('slides', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stain_category', sa.Enum('he', 'ihc', 'special', 'fluorescence', 'multiplex',
                                                                name='staincategory', native_enum=False, length=24),
                                      nullable=True))
        batch_op.add_column(sa.Column('block_label', sa.String(length=32), server_default='', nullable=False))
        batch_op.add_column(sa.Column('withdrawn_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('withdraw_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('purge_after', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('purged_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_slides_withdrawn_by_id_users'), 'users', ['withdrawn_by_id'], ['id'])
    op.execute("UPDATE slides SET stain_category = 'he' "
               "WHERE UPPER(REPLACE(REPLACE(stain, ' ', ''), '&', '')) IN ('HE', 'H&E', 'HANDE')")


def downgrade() -> None:
    with op.batch_alter_table('slides', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_slides_withdrawn_by_id_users'), type_='foreignkey')
        batch_op.drop_column('purged_at')
        batch_op.drop_column('purge_after')
        batch_op.drop_column('withdraw_reason')
        batch_op.drop_column('withdrawn_by_id')
        batch_op.drop_column('block_label')
        batch_op.drop_column('stain_category')
