"""slides.preview_level: a slide that so far has only the scanner's coarse preview levels

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 00:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('slides') as batch:
        batch.add_column(sa.Column('preview_level', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('slides') as batch:
        batch.drop_column('preview_level')
