"""The files of jobs (an import's upload, an export's result), stored in
Postgres in chunks: the API and the worker may share no disk (Render), and
neither ever holds more than one chunk of a file to move it."""

from __future__ import annotations

import enum
from uuid import UUID

from sqlalchemy import CheckConstraint, Enum, ForeignKey, Integer, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base


class JobFileRole(enum.StrEnum):
    """Which of its job's files a chunk belongs to."""

    input = "input"
    result = "result"


class JobFile(Base):
    """One chunk of a job's file: chunk ``seq`` (from 0) of the file
    ``role``. Every chunk but the last is full (``core.jobs.files.CHUNK_BYTES``);
    an empty file has no chunk. Deleted with its job."""

    __tablename__ = "job_files"
    __table_args__ = (CheckConstraint("seq >= 0", name="seq_non_negative"),)

    job_id: Mapped[UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[JobFileRole] = mapped_column(
        Enum(JobFileRole, name="job_file_role", values_callable=lambda e: [m.value for m in e]),
        primary_key=True,
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
