"""on_call_shifts and frozen_pages: the frozen-section lane (on-call roster, pages, SMS status)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 20:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'on_call_shifts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('institution_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('phone', sa.String(length=32), nullable=False, server_default=''),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['institution_id'], ['institutions.id']),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_on_call_shifts_institution_id', 'on_call_shifts', ['institution_id'])
    op.create_index('ix_on_call_shifts_user_id', 'on_call_shifts', ['user_id'])
    op.create_table(
        'frozen_pages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('consultation_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('fallback', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('sms_status', sa.String(length=16), nullable=False),
        sa.Column('sms_attempts', sa.Integer(), nullable=False),
        sa.Column('sms_error', sa.Text(), nullable=False),
        sa.Column('phone', sa.String(length=32), nullable=False, server_default=''),
        sa.ForeignKeyConstraint(['consultation_id'], ['consultations.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_frozen_pages_consultation_id', 'frozen_pages', ['consultation_id'])
    op.create_index('ix_frozen_pages_user_id', 'frozen_pages', ['user_id'])


def downgrade() -> None:
    op.drop_index('ix_frozen_pages_user_id', table_name='frozen_pages')
    op.drop_index('ix_frozen_pages_consultation_id', table_name='frozen_pages')
    op.drop_table('frozen_pages')
    op.drop_index('ix_on_call_shifts_user_id', table_name='on_call_shifts')
    op.drop_index('ix_on_call_shifts_institution_id', table_name='on_call_shifts')
    op.drop_table('on_call_shifts')
