"""institutions.report_language: the language of the report PDFs for cases this institution refers

A consultation report is printed in the referring institution's language (zh by default,
the users are Chinese), not in whichever language the signing pathologist's screen uses.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-04 16:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('institutions') as batch:
        batch.add_column(sa.Column('report_language', sa.String(length=8), nullable=False, server_default='zh'))


def downgrade() -> None:
    with op.batch_alter_table('institutions') as batch:
        batch.drop_column('report_language')
