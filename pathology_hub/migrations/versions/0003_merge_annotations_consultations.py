"""Merge the annotations and consultations branches (both start from 0001).

Revision ID: 0003
Revises: 0002a, 0002c
"""

revision = "0003"
down_revision = ("0002a", "0002c")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
