"""slides.reject_params: what ingest found in a refused file, as JSON values

The refusal is shown in the user's language (zh/en) with the facts it names (bits per sample,
channel count, scanner format, DICOM variant), so those facts are stored beside the stable
``reject_code`` instead of only inside the English ``reject_message``.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 20:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('slides') as batch:
        batch.add_column(sa.Column('reject_params', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('slides') as batch:
        batch.drop_column('reject_params')
