"""job files stored in chunks; sizes for the per-user quota; result retention

Revision ID: f5a2c7e91b04
Revises: d4aab0133902
Create Date: 2026-11-28 12:00:00.000000+00:00

Additive, so that the release before it keeps working while this one rolls
out (README, Deploying; deploy/vm/deploy.sh migrates before it replaces the
api, and on Render the old api runs on for a moment after the migration).
``jobs.input_file`` and ``jobs.result_file`` stay, nullable and no longer
written by this release, which reads them as a fallback for rows the
previous release writes meanwhile; a later release drops them. What they
hold now moves into ``job_files`` here.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f5a2c7e91b04"
down_revision: str | None = "d4aab0133902"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# core.jobs.files.CHUNK_BYTES when this was written (a migration never
# imports the code it migrates for).
CHUNK_BYTES = 1024 * 1024

ROLE = sa.Enum("input", "result", name="job_file_role")


def upgrade() -> None:
    op.create_table(
        "job_files",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("role", ROLE, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("seq >= 0", name=op.f("ck_job_files_seq_non_negative")),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_files_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "role", "seq", name=op.f("pk_job_files")),
    )
    # A constant default: no table rewrite (Postgres 11+), and the previous
    # release's inserts, which do not name these columns, get 0.
    op.add_column(
        "jobs", sa.Column("input_bytes", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.add_column(
        "jobs", sa.Column("result_bytes", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.add_column(
        "jobs", sa.Column("result_purged_at", sa.DateTime(timezone=True), nullable=True)
    )
    _move_files_into_chunks()
    op.create_index(
        "ix_jobs_owner_id_stored_files",
        "jobs",
        ["owner_id"],
        postgresql_where=sa.text("input_bytes > 0 OR result_bytes > 0"),
    )
    op.create_index(
        "ix_jobs_finished_at_result_stored",
        "jobs",
        ["finished_at"],
        postgresql_where=sa.text("result_media_type IS NOT NULL AND result_purged_at IS NULL"),
    )


def _move_files_into_chunks() -> None:
    """Every stored file copied into chunks, its size counted. The old
    columns keep their copy, so that the release before this one, still
    running during a rolling update, reads the uploads of the jobs it claims
    and serves the results it knows (expand now, contract later: a later
    release drops the columns). This release clears them when it deletes a
    file. An upload of a job that has ended is dropped instead: from this
    release on, an upload lives only as long as its job."""
    op.execute(
        """
        UPDATE jobs SET input_file = NULL
        WHERE input_file IS NOT NULL AND status NOT IN ('queued', 'running')
        """
    )
    for role in ("input", "result"):
        column = f"{role}_file"
        op.execute(
            f"""
            INSERT INTO job_files (job_id, role, seq, data)
            SELECT id, '{role}', part.seq,
                   substring({column} FROM part.seq * {CHUNK_BYTES} + 1 FOR {CHUNK_BYTES})
            FROM jobs,
                 generate_series(0, (octet_length({column}) - 1) / {CHUNK_BYTES}) AS part(seq)
            WHERE {column} IS NOT NULL AND octet_length({column}) > 0
            """
        )
        op.execute(
            f"""
            UPDATE jobs SET {role}_bytes = octet_length({column})
            WHERE {column} IS NOT NULL
            """
        )
    # A result the release before d4aab0133902 stored without a type: served
    # as it was, as octet-stream named after its job.
    op.execute(
        """
        UPDATE jobs
        SET result_media_type = 'application/octet-stream',
            result_filename = kind || '-' || id::text
        WHERE result_bytes > 0 AND result_media_type IS NULL
        """
    )


def downgrade() -> None:
    # Back into the columns the previous release reads (a purged result
    # stays gone).
    for role in ("input", "result"):
        op.execute(
            f"""
            UPDATE jobs SET {role}_file = files.data
            FROM (
                SELECT job_id, string_agg(data, ''::bytea ORDER BY seq) AS data
                FROM job_files WHERE role = '{role}' GROUP BY job_id
            ) AS files
            WHERE jobs.id = files.job_id
            """
        )
    op.drop_index("ix_jobs_finished_at_result_stored", table_name="jobs")
    op.drop_index("ix_jobs_owner_id_stored_files", table_name="jobs")
    op.drop_column("jobs", "result_purged_at")
    op.drop_column("jobs", "result_bytes")
    op.drop_column("jobs", "input_bytes")
    op.drop_table("job_files")
    ROLE.drop(op.get_bind(), checkfirst=True)
