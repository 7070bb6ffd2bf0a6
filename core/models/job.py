"""Background jobs. The row is the source of truth; a broker message only says
"look at job N"."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, Timestamps, UUIDPrimaryKey


class JobStatus(enum.StrEnum):
    """Lifecycle of a job: queued -> running -> succeeded | failed | cancelled."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class Job(UUIDPrimaryKey, Timestamps, Base):
    """A unit of work the API records and the worker carries out."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("progress BETWEEN 0 AND 100", name="progress_range"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        Index("ix_jobs_status_created_at", "status", "created_at"),
        Index("ix_jobs_owner_id_created_at", "owner_id", "created_at"),
        # Active jobs only (finished ones leave it): the fair claim's running
        # counts and queue heads per owner, and the active-jobs quota.
        Index(
            "ix_jobs_active_status_owner_id",
            "status",
            "owner_id",
            "created_at",
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        # The fair claim's "when was this owner last served?" and the relay's
        # "was any job claimed lately?" are each a lookup of the latest. The
        # second is DESC NULLS LAST on purpose: max(started_at) of one owner
        # cannot use it, so the planner never scans every later claim of
        # other owners for it instead of taking the first one above.
        Index("ix_jobs_owner_id_started_at", "owner_id", "started_at"),
        Index("ix_jobs_started_at", text("started_at DESC NULLS LAST")),
        # The per-user sum of stored files reads only the jobs that hold some.
        Index(
            "ix_jobs_owner_id_stored_files",
            "owner_id",
            postgresql_where=text("input_bytes > 0 OR result_bytes > 0"),
        ),
        # The retention purge finds the results still stored, oldest first.
        Index(
            "ix_jobs_finished_at_result_stored",
            "finished_at",
            postgresql_where=text("result_media_type IS NOT NULL AND result_purged_at IS NULL"),
        ),
    )

    owner_id: Mapped[UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, name="job_status", values_callable=lambda e: [m.value for m in e]),
        default=JobStatus.queued,
        server_default=JobStatus.queued.value,
        nullable=False,
    )
    progress: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    # Row counts the job reports as it goes (an import: created, updated, ...).
    counts: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict, server_default="{}")
    # Small JSON outcome (an import's report); large outputs go to result_file.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    # Files live in Postgres, not on a disk: the API and the worker may share
    # none (Render). They are stored in chunks (``job_files``); these two
    # columns are where the release before chunks put them: no longer
    # written, read only as a fallback for a row that release wrote during
    # a rolling update. Deferred, so that listing jobs never loads them.
    input_file: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    result_file: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    # Bytes of the job's files stored now, for the per-user quota: the
    # upload until the job ends, the result until it is purged.
    input_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    result_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # How the API serves the result file (set together with it).
    result_media_type: Mapped[str | None] = mapped_column(String(255))
    result_filename: Mapped[str | None] = mapped_column(String(255))
    # When the result file was deleted, RESULT_RETENTION_HOURS after the
    # job finished (the row stays; its result route answers 410).
    result_purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When a broker message for this job was last sent; the relay re-sends
    # queued jobs whose message seems lost.
    enqueued_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    # The id of the API request that created the job: the worker logs it with
    # every line of the job's run, whichever message delivered it.
    request_id: Mapped[str | None] = mapped_column(String(128))
    # With tracing on, the trace context of that request (W3C headers:
    # traceparent, tracestate): the run joins its trace, whichever message
    # delivered it (core.tracing).
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
