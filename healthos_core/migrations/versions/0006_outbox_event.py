"""outbox_event: live clinical events recorded for the rescoring consumer

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 18:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import healthos_core.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("entity_ref", sa.String(length=128), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=True),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("created_at", healthos_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_until", healthos_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("done_at", healthos_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_event")),
    )
    op.create_index("ix_outbox_event_pending", "outbox_event", ["done_at", "id"], unique=False)
    op.create_index("ix_outbox_event_entity_ref", "outbox_event", ["entity_ref"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbox_event_entity_ref", table_name="outbox_event")
    op.drop_index("ix_outbox_event_pending", table_name="outbox_event")
    op.drop_table("outbox_event")
