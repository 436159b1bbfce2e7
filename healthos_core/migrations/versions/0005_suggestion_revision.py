"""suggestion_revision: a value that changes whenever a stored suggestion does

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 17:40:00.000000
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "suggestion_revision",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("revision", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suggestion_revision")),
    )
    # Suggestions stored before this revision exist: give them a first revision.
    op.bulk_insert(table, [{"id": 1, "revision": uuid.uuid4().hex}])


def downgrade() -> None:
    op.drop_table("suggestion_revision")
