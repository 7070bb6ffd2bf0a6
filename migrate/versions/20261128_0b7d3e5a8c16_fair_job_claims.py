"""indexes for fair job claims and per-user quotas

Revision ID: 0b7d3e5a8c16
Revises: f5a2c7e91b04
Create Date: 2026-11-28 12:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0b7d3e5a8c16"
down_revision: str | None = "f5a2c7e91b04"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Active jobs only: the index stays as small as the queue, however many
    # finished jobs the table keeps. It serves the fair claim (running counts
    # and queue heads per owner) and the active-jobs quota.
    op.create_index(
        "ix_jobs_active_status_owner_id",
        "jobs",
        ["status", "owner_id", "created_at"],
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )
    # The latest claim of an owner (fair claims take turns between owners)
    # and of anyone (the relay re-sends only when nothing is being claimed);
    # see the model for why the second is DESC NULLS LAST.
    op.create_index("ix_jobs_owner_id_started_at", "jobs", ["owner_id", "started_at"])
    op.create_index("ix_jobs_started_at", "jobs", [sa.text("started_at DESC NULLS LAST")])


def downgrade() -> None:
    op.drop_index("ix_jobs_started_at", table_name="jobs")
    op.drop_index("ix_jobs_owner_id_started_at", table_name="jobs")
    op.drop_index("ix_jobs_active_status_owner_id", table_name="jobs")
