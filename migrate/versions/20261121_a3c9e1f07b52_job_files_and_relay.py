"""job files, counts and relay bookkeeping; every job has an owner; ids
default to gen_random_uuid() (for COPY)

Revision ID: a3c9e1f07b52
Revises: 37b1e62a2f32
Create Date: 2026-11-21 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


revision: str = "a3c9e1f07b52"
down_revision: str | None = "37b1e62a2f32"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


TABLES = ("users", "jobs", "items")


def upgrade() -> None:
    for table in TABLES:
        op.alter_column(table, "id", server_default=sa.text("gen_random_uuid()"))
    # Jobs without an owner could only come from tests of an earlier revision.
    op.execute("DELETE FROM jobs WHERE owner_id IS NULL")
    op.alter_column("jobs", "owner_id", existing_type=sa.Uuid(), nullable=False)
    op.drop_index("ix_jobs_owner_id", table_name="jobs")
    op.create_index("ix_jobs_owner_id_created_at", "jobs", ["owner_id", "created_at"])
    op.add_column(
        "jobs",
        sa.Column(
            "counts",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
    )
    op.add_column("jobs", sa.Column("input_file", sa.LargeBinary(), nullable=True))
    op.add_column("jobs", sa.Column("result_file", sa.LargeBinary(), nullable=True))
    op.add_column(
        "jobs",
        sa.Column(
            "enqueued_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    for table in TABLES:
        op.alter_column(table, "id", server_default=None)
    op.drop_column("jobs", "enqueued_at")
    op.drop_column("jobs", "result_file")
    op.drop_column("jobs", "input_file")
    op.drop_column("jobs", "counts")
    op.drop_index("ix_jobs_owner_id_created_at", table_name="jobs")
    op.create_index("ix_jobs_owner_id", "jobs", ["owner_id"])
    op.alter_column("jobs", "owner_id", existing_type=sa.Uuid(), nullable=True)
