"""jobs.trace_context: the trace of the API request that created the job

Revision ID: 7c2f4d9e1a6b
Revises: 0b7d3e5a8c16
Create Date: 2026-11-29 00:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "7c2f4d9e1a6b"
down_revision: str | None = "0b7d3e5a8c16"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: instant on a large table, and the previous
    # release keeps working while this one rolls out.
    op.add_column(
        "jobs",
        sa.Column("trace_context", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("jobs", "trace_context")
