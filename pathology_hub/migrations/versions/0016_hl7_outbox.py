"""hl7_outbox and institutions.lis_host/lis_port: HL7 v2 ORU^R01 results to the referring LIS

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 21:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('institutions') as batch:
        batch.add_column(sa.Column('lis_host', sa.String(length=253), nullable=True))
        batch.add_column(sa.Column('lis_port', sa.Integer(), nullable=True))
    op.create_table(
        'hl7_outbox',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('institution_id', sa.Integer(), nullable=False),
        sa.Column('version_id', sa.Integer(), nullable=False),
        sa.Column('control_id', sa.String(length=40), nullable=False),
        sa.Column('result_status', sa.String(length=1), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('ack_code', sa.String(length=2), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('job_id', sa.Integer(), nullable=True),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_hl7_outbox_institution_id_institutions')),
        sa.ForeignKeyConstraint(['version_id'], ['report_versions.id'], name=op.f('fk_hl7_outbox_version_id_report_versions')),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_hl7_outbox_job_id_jobs')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_hl7_outbox')),
        sa.UniqueConstraint('control_id', name=op.f('uq_hl7_outbox_control_id')),
    )
    op.create_index(op.f('ix_hl7_outbox_institution_id'), 'hl7_outbox', ['institution_id'], unique=False)
    op.create_index(op.f('ix_hl7_outbox_version_id'), 'hl7_outbox', ['version_id'], unique=False)
    op.create_index(op.f('ix_hl7_outbox_status'), 'hl7_outbox', ['status'], unique=False)


def downgrade() -> None:
    op.drop_table('hl7_outbox')
    with op.batch_alter_table('institutions') as batch:
        batch.drop_column('lis_port')
        batch.drop_column('lis_host')
