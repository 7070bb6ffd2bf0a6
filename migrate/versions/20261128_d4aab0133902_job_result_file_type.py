"""jobs.result_media_type, jobs.result_filename: how a job's file is served

Revision ID: d4aab0133902
Revises: e4b8a1c93d57
Create Date: 2026-11-28 00:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d4aab0133902"
down_revision: str | None = "e4b8a1c93d57"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: instant on a large table, and the previous
    # release keeps working while this one rolls out.
    op.add_column("jobs", sa.Column("result_media_type", sa.String(length=255), nullable=True))
    op.add_column("jobs", sa.Column("result_filename", sa.String(length=255), nullable=True))
    # Exports made before this release: served as they were (the code used to
    # name them itself).
    op.execute(
        """
        UPDATE jobs
        SET result_media_type = 'text/csv; charset=utf-8',
            result_filename = 'items-' || id::text || '.csv'
        WHERE kind = 'items.export' AND status = 'succeeded'
        """
    )


def downgrade() -> None:
    op.drop_column("jobs", "result_filename")
    op.drop_column("jobs", "result_media_type")
