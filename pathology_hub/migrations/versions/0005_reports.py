"""reports: consultation reports, their versions, signatures, signed PDFs and figures

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 03:17:24.465234
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('consultation_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_reports_case_id_cases')),
    sa.ForeignKeyConstraint(['consultation_id'], ['consultations.id'], name=op.f('fk_reports_consultation_id_consultations')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_reports_created_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reports')),
    sa.UniqueConstraint('consultation_id', name=op.f('uq_reports_consultation_id'))
    )
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reports_case_id'), ['case_id'], unique=False)

    op.create_table('report_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('specimen', sa.Text(), nullable=False),
    sa.Column('gross_description', sa.Text(), nullable=False),
    sa.Column('microscopic_description', sa.Text(), nullable=False),
    sa.Column('diagnosis', sa.Text(), nullable=False),
    sa.Column('diagnosis_code', sa.String(length=32), nullable=False),
    sa.Column('diagnosis_code_system', sa.String(length=32), nullable=False),
    sa.Column('diagnosis_code_display', sa.String(length=200), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('recommendations', sa.Text(), nullable=False),
    sa.Column('answer_to_question', sa.Text(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('signed_by_id', sa.Integer(), nullable=True),
    sa.Column('superseded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('superseded_by_number', sa.Integer(), nullable=True),
    sa.Column('verification_code', sa.String(length=40), nullable=True),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_report_versions_author_id_users')),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_report_versions_report_id_reports')),
    sa.ForeignKeyConstraint(['signed_by_id'], ['users.id'], name=op.f('fk_report_versions_signed_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_versions')),
    sa.UniqueConstraint('report_id', 'number', name='uq_report_versions_report_number'),
    sa.UniqueConstraint('verification_code', name=op.f('uq_report_versions_verification_code'))
    )
    with op.batch_alter_table('report_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_versions_report_id'), ['report_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_report_versions_status'), ['status'], unique=False)

    op.create_table('report_figures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('slide_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('caption', sa.Text(), nullable=False),
    sa.Column('view_link', sa.Text(), nullable=False),
    sa.Column('bounds', sa.Text(), nullable=False),
    sa.Column('rotation', sa.Float(), nullable=False),
    sa.Column('magnification', sa.String(length=32), nullable=False),
    sa.Column('image_key', sa.String(length=300), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_report_figures_created_by_id_users')),
    sa.ForeignKeyConstraint(['slide_id'], ['slides.id'], name=op.f('fk_report_figures_slide_id_slides')),
    sa.ForeignKeyConstraint(['version_id'], ['report_versions.id'], name=op.f('fk_report_figures_version_id_report_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_figures'))
    )
    with op.batch_alter_table('report_figures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_figures_version_id'), ['version_id'], unique=False)

    op.create_table('report_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('storage_key', sa.String(length=300), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['report_versions.id'], name=op.f('fk_report_files_version_id_report_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_files'))
    )
    with op.batch_alter_table('report_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_files_version_id'), ['version_id'], unique=False)

    op.create_table('report_signatures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('full_name', sa.String(length=200), nullable=False),
    sa.Column('institution', sa.String(length=200), nullable=False),
    sa.Column('meaning', sa.String(length=200), nullable=False),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_report_signatures_user_id_users')),
    sa.ForeignKeyConstraint(['version_id'], ['report_versions.id'], name=op.f('fk_report_signatures_version_id_report_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_signatures')),
    sa.UniqueConstraint('version_id', 'role', name='uq_report_signatures_version_role')
    )
    with op.batch_alter_table('report_signatures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_signatures_version_id'), ['version_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('report_signatures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_signatures_version_id'))

    op.drop_table('report_signatures')
    with op.batch_alter_table('report_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_files_version_id'))

    op.drop_table('report_files')
    with op.batch_alter_table('report_figures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_figures_version_id'))

    op.drop_table('report_figures')
    with op.batch_alter_table('report_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_versions_status'))
        batch_op.drop_index(batch_op.f('ix_report_versions_report_id'))

    op.drop_table('report_versions')
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reports_case_id'))

    op.drop_table('reports')
