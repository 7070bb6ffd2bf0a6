"""SQL for jobs. No commits here: the session's owner commits."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Job, JobStatus


async def get(session: AsyncSession, job_id: UUID) -> Job | None:
    """The job, or None."""
    return await session.get(Job, job_id)


async def get_owned(session: AsyncSession, owner_id: UUID, job_id: UUID) -> Job | None:
    """The job if it exists and belongs to ``owner_id``."""
    return await session.scalar(select(Job).where(Job.id == job_id, Job.owner_id == owner_id))


async def create(
    session: AsyncSession, *, kind: str, payload: dict[str, Any], owner_id: UUID | None = None
) -> Job:
    """Insert a queued job and flush it, so that its defaults are loaded."""
    job = Job(kind=kind, payload=payload, status=JobStatus.queued, owner_id=owner_id)
    session.add(job)
    await session.flush()
    await session.refresh(job)
    return job


async def claim(session: AsyncSession, job_id: UUID) -> Job | None:
    """Atomically move a queued job to running. Returns None when another
    worker has it already or it is no longer queued, so a duplicate message
    is a no-op."""
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.queued)
        .values(
            status=JobStatus.running,
            attempts=Job.attempts + 1,
            started_at=func.coalesce(Job.started_at, func.now()),
            heartbeat_at=func.now(),
        )
        .returning(Job)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def finish(
    session: AsyncSession,
    job_id: UUID,
    *,
    status: JobStatus,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """Record the outcome of a running job."""
    await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.running)
        .values(
            status=status,
            result=result,
            error=error,
            progress=100 if status is JobStatus.succeeded else Job.progress,
            finished_at=func.now(),
            heartbeat_at=func.now(),
        )
    )


async def count_by_status(session: AsyncSession) -> dict[str, int]:
    """How many jobs are in each status."""
    rows = await session.execute(select(Job.status, func.count()).group_by(Job.status))
    return {status.value: count for status, count in rows.tuples()}
