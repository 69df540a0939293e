"""annotations and measurements

Revision ID: 0002a
Revises: 0001
Create Date: 2026-11-23 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002a'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('annotations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slide_id', sa.Integer(), nullable=False),
    sa.Column('uid', sa.String(length=64), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('object_type', sa.String(length=16), nullable=False),
    sa.Column('locked', sa.Boolean(), nullable=False),
    sa.Column('geometry', sa.Text(), nullable=False),
    sa.Column('geom_type', sa.String(length=16), nullable=False),
    sa.Column('shape', sa.String(length=16), nullable=True),
    sa.Column('min_x', sa.Float(), nullable=False),
    sa.Column('min_y', sa.Float(), nullable=False),
    sa.Column('max_x', sa.Float(), nullable=False),
    sa.Column('max_y', sa.Float(), nullable=False),
    sa.Column('area_px', sa.Float(), nullable=False),
    sa.Column('length_px', sa.Float(), nullable=False),
    sa.Column('class_name', sa.String(length=100), nullable=True),
    sa.Column('color', sa.String(length=7), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('measurements', sa.Text(), nullable=False),
    sa.Column('extra', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_annotations_author_id_users')),
    sa.ForeignKeyConstraint(['slide_id'], ['slides.id'], name=op.f('fk_annotations_slide_id_slides')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annotations')),
    sa.UniqueConstraint('slide_id', 'uid', name='uq_annotations_slide_uid')
    )
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_annotations_author_id'), ['author_id'], unique=False)
        batch_op.create_index('ix_annotations_slide_bbox', ['slide_id', 'min_x', 'max_x', 'min_y', 'max_y'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.drop_index('ix_annotations_slide_bbox')
        batch_op.drop_index(batch_op.f('ix_annotations_author_id'))
    op.drop_table('annotations')
