"""jobs.request_id: the API request that created the job

Revision ID: c71d2e8a9f10
Revises: a3c9e1f07b52
Create Date: 2026-11-22 00:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c71d2e8a9f10"
down_revision: str | None = "a3c9e1f07b52"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: instant on a large table, and the previous
    # release keeps working while this one rolls out.
    op.add_column("jobs", sa.Column("request_id", sa.String(length=128), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "request_id")
