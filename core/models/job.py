"""Background jobs. The row is the source of truth; a broker message only says
"look at job N"."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
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
    # none (Render). Deferred, so that listing jobs never loads them.
    input_file: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    result_file: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    # How the API serves result_file (set together with it).
    result_media_type: Mapped[str | None] = mapped_column(String(255))
    result_filename: Mapped[str | None] = mapped_column(String(255))
    # When a broker message for this job was last sent; the relay re-sends
    # queued jobs whose message seems lost.
    enqueued_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    # The id of the API request that created the job: the worker logs it with
    # every line of the job's run, whichever message delivered it.
    request_id: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
