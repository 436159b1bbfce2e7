"""queues and beds in the record: queue tickets (task), appointments, rosters, pool thresholds

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 22:06:24.603196
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import healthos_core.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bed_pool_threshold",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("facility_id", sa.String(length=64), nullable=True),
        sa.Column("pool", sa.String(length=32), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bed_pool_threshold")),
        sa.UniqueConstraint(
            "facility_id", "pool", name=op.f("uq_bed_pool_threshold_facility_id_pool")
        ),
    )
    op.create_table(
        "appointment",
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=True),
        sa.Column("start", healthos_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("end", healthos_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("facility_id", sa.String(length=64), nullable=True),
        sa.Column("resource", sa.JSON(), nullable=True),
        sa.Column("created_at", healthos_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", healthos_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"], ["location.id"], name=op.f("fk_appointment_location_id_location")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_appointment_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment")),
    )
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_appointment_facility_id"), ["facility_id"], unique=False
        )
        batch_op.create_index(
            "ix_appointment_location_start", ["location_id", "start"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_appointment_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "queue_roster",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=True),
        sa.Column("date", sa.Date(), nullable=True),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("servers", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "(weekday IS NULL) <> (date IS NULL)", name=op.f("ck_queue_roster_weekday_or_date")
        ),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["location.id"],
            name=op.f("fk_queue_roster_location_id_location"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_roster")),
        sa.UniqueConstraint(
            "location_id",
            "weekday",
            "date",
            "hour",
            name=op.f("uq_queue_roster_location_id_weekday_date_hour"),
        ),
    )
    with op.batch_alter_table("queue_roster", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_queue_roster_location_id"), ["location_id"], unique=False
        )

    op.create_table(
        "task",
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("encounter_id", sa.String(length=64), nullable=True),
        sa.Column("location_id", sa.String(length=64), nullable=True),
        sa.Column("priority", sa.String(length=16), nullable=True),
        sa.Column("arrived_at", healthos_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("called_at", healthos_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("service_started_at", healthos_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("service_ended_at", healthos_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("left_at", healthos_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("facility_id", sa.String(length=64), nullable=True),
        sa.Column("resource", sa.JSON(), nullable=True),
        sa.Column("created_at", healthos_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", healthos_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["encounter_id"], ["encounter.id"], name=op.f("fk_task_encounter_id_encounter")
        ),
        sa.ForeignKeyConstraint(
            ["location_id"], ["location.id"], name=op.f("fk_task_location_id_location")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_task_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task")),
    )
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_encounter_id"), ["encounter_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_facility_id"), ["facility_id"], unique=False)
        batch_op.create_index(
            "ix_task_location_arrived", ["location_id", "arrived_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_task_patient_id"), ["patient_id"], unique=False)

    with op.batch_alter_table("encounter", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "expected_discharge_at", healthos_core.db.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column(
                "admit_decision_at", healthos_core.db.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("admit_to_pool", sa.String(length=32), nullable=True))

    with op.batch_alter_table("location", schema=None) as batch_op:
        batch_op.add_column(sa.Column("service_type", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("target_wait_minutes", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("location", schema=None) as batch_op:
        batch_op.drop_column("target_wait_minutes")
        batch_op.drop_column("service_type")

    with op.batch_alter_table("encounter", schema=None) as batch_op:
        batch_op.drop_column("admit_to_pool")
        batch_op.drop_column("admit_decision_at")
        batch_op.drop_column("expected_discharge_at")

    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_patient_id"))
        batch_op.drop_index("ix_task_location_arrived")
        batch_op.drop_index(batch_op.f("ix_task_facility_id"))
        batch_op.drop_index(batch_op.f("ix_task_encounter_id"))

    op.drop_table("task")
    with op.batch_alter_table("queue_roster", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_queue_roster_location_id"))

    op.drop_table("queue_roster")
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appointment_patient_id"))
        batch_op.drop_index("ix_appointment_location_start")
        batch_op.drop_index(batch_op.f("ix_appointment_facility_id"))

    op.drop_table("appointment")
    op.drop_table("bed_pool_threshold")
