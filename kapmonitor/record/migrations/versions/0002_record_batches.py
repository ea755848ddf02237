"""committed batches by writer and number, so a spool replayed twice is stored once

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 16:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "record_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("writer", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("writer", "seq", name="uq_record_batches_writer_seq"),
    )
    with op.batch_alter_table("record_batches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_record_batches_session_id"), ["session_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("record_batches")
