"""consultations: requests along the referral chain, their history, in-app notifications

Revision ID: 0002c
Revises: 0001
Create Date: 2026-11-22 23:59:28.582554
"""
from alembic import op
import sqlalchemy as sa


revision = '0002c'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('consultations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.Enum('draft', 'triage', 'assigned', 'in_review', 'info_requested', 'escalated', 'reported', 'returned', 'acknowledged', 'cancelled', name='consultationstate', native_enum=False, length=24), nullable=False),
    sa.Column('priority', sa.Enum('routine', 'urgent', 'frozen', name='priority', native_enum=False, length=24), nullable=False),
    sa.Column('requesting_institution_id', sa.Integer(), nullable=False),
    sa.Column('receiving_institution_id', sa.Integer(), nullable=True),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('requested_expert_id', sa.Integer(), nullable=True),
    sa.Column('subspecialty', sa.String(length=64), nullable=False),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('preliminary_opinion', sa.Text(), nullable=False),
    sa.Column('opinion', sa.Text(), nullable=False),
    sa.Column('follow_up_advice', sa.Text(), nullable=False),
    sa.Column('cancel_reason', sa.Text(), nullable=False),
    sa.Column('paused_intervals', sa.Text(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('returned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('overdue_notified_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['assignee_id'], ['users.id'], name=op.f('fk_consultations_assignee_id_users')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_consultations_case_id_cases')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_consultations_created_by_id_users')),
    sa.ForeignKeyConstraint(['parent_id'], ['consultations.id'], name=op.f('fk_consultations_parent_id_consultations')),
    sa.ForeignKeyConstraint(['receiving_institution_id'], ['institutions.id'], name=op.f('fk_consultations_receiving_institution_id_institutions')),
    sa.ForeignKeyConstraint(['requested_expert_id'], ['users.id'], name=op.f('fk_consultations_requested_expert_id_users')),
    sa.ForeignKeyConstraint(['requesting_institution_id'], ['institutions.id'], name=op.f('fk_consultations_requesting_institution_id_institutions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consultations'))
    )
    with op.batch_alter_table('consultations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consultations_assignee_id'), ['assignee_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consultations_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consultations_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consultations_receiving_institution_id'), ['receiving_institution_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consultations_state'), ['state'], unique=False)

    op.create_table('consultation_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('consultation_id', sa.Integer(), nullable=False),
    sa.Column('transition', sa.String(length=32), nullable=False),
    sa.Column('from_state', sa.String(length=24), nullable=False),
    sa.Column('to_state', sa.String(length=24), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_consultation_events_actor_id_users')),
    sa.ForeignKeyConstraint(['consultation_id'], ['consultations.id'], name=op.f('fk_consultation_events_consultation_id_consultations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consultation_events'))
    )
    with op.batch_alter_table('consultation_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consultation_events_actor_id'), ['actor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consultation_events_consultation_id'), ['consultation_id'], unique=False)

    op.create_table('notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('consultation_id', sa.Integer(), nullable=True),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('params', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['consultation_id'], ['consultations.id'], name=op.f('fk_notifications_consultation_id_consultations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notifications_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications'))
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notifications_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notifications_user_id'))

    op.drop_table('notifications')
    with op.batch_alter_table('consultation_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consultation_events_consultation_id'))
        batch_op.drop_index(batch_op.f('ix_consultation_events_actor_id'))

    op.drop_table('consultation_events')
    with op.batch_alter_table('consultations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consultations_state'))
        batch_op.drop_index(batch_op.f('ix_consultations_receiving_institution_id'))
        batch_op.drop_index(batch_op.f('ix_consultations_parent_id'))
        batch_op.drop_index(batch_op.f('ix_consultations_case_id'))
        batch_op.drop_index(batch_op.f('ix_consultations_assignee_id'))

    op.drop_table('consultations')
