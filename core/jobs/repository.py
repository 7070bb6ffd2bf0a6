"""SQL for jobs. No commits here: the session's owner commits.

A run of a job is identified by ``(id, attempts)``: every write a run makes
after its claim matches on both (:func:`core.jobs.ending.this_run`), and whatever ends a run
other than its success empties the counts it reported (see README, Jobs:
delivery).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import fetch_page
from core.jobs import ending
from core.jobs.ending import INPUT_RELEASED as _INPUT_RELEASED
from core.jobs.ending import this_run as _this_run
from core.jobs.insertion import create as create
from core.models import Job, JobStatus

ACTIVE = (JobStatus.queued, JobStatus.running)

# A claim runs in a session of its own, which holds no job yet: the claimed
# row is loaded from the UPDATE's RETURNING, and there is nothing in the
# session for the ORM to bring in line first (with its default it compiled
# the statement's WHERE into a Python evaluator on every claim).
CLAIM_OPTIONS: dict[str, Any] = {"populate_existing": True, "synchronize_session": False}


# First key of the two-int advisory locks taken per job owner (the second is
# derived from the owner id); other features use other namespaces.
_OWNER_LOCK_NAMESPACE = 0x6A6F62  # "job"


async def lock_owner(session: AsyncSession, owner_id: UUID) -> None:
    """Serialise, until the transaction ends, the quota checks of one owner's
    jobs (active jobs, stored files): concurrent submits see each other's rows.
    A transaction-level lock, so it is safe behind PgBouncer's transaction mode."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(:ns, hashtext(:owner))"),
        {"ns": _OWNER_LOCK_NAMESPACE, "owner": str(owner_id)},
    )


async def get_owned(session: AsyncSession, owner_id: UUID, job_id: UUID) -> Job | None:
    """The job if it exists and belongs to ``owner_id``."""
    return await session.scalar(select(Job).where(Job.id == job_id, Job.owner_id == owner_id))


async def page(
    session: AsyncSession,
    owner_id: UUID,
    *,
    limit: int,
    offset: int,
    status: JobStatus | None = None,
    kind: str | None = None,
) -> tuple[Sequence[Job], int]:
    """A page of the owner's jobs, newest first, and how many match in all."""
    where: list[ColumnElement[bool]] = [Job.owner_id == owner_id]
    if status is not None:
        where.append(Job.status == status)
    if kind is not None:
        where.append(Job.kind == kind)
    return await fetch_page(
        session,
        Job,
        where=where,
        order_by=(Job.created_at.desc(), Job.id.desc()),
        limit=limit,
        offset=offset,
    )


async def claim(session: AsyncSession, job_id: UUID) -> Job | None:
    """Atomically move a queued job to running and count the attempt.

    Returns None when the job is not queued (missing, claimed by another
    worker, finished or cancelled), so a duplicate message is a no-op.
    """
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.queued)
        .values(
            status=JobStatus.running,
            attempts=Job.attempts + 1,
            progress=0,
            counts={},
            started_at=func.now(),
            heartbeat_at=func.now(),
        )
        .returning(Job)
        .execution_options(**CLAIM_OPTIONS)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def record_heartbeat(
    session: AsyncSession,
    job_id: UUID,
    attempt: int,
    *,
    progress: int | None = None,
    counts: dict[str, int] | None = None,
) -> bool:
    """Record a heartbeat (and progress) of a run. False when the run no
    longer owns the job: it was cancelled or taken back."""
    # A lost heartbeat costs nothing (the next one follows); no need to wait
    # for the WAL flush.
    await session.execute(text("SET LOCAL synchronous_commit TO off"))
    values: dict[str, Any] = {"heartbeat_at": func.now()}
    if progress is not None:
        values["progress"] = max(0, min(progress, 100))
    if counts is not None:
        values["counts"] = counts
    statement = update(Job).where(*_this_run(job_id, attempt)).values(**values).returning(Job.id)
    # Its own session, holding no job: nothing for the ORM to bring in line.
    statement = statement.execution_options(synchronize_session=False)
    return (await session.execute(statement)).first() is not None


async def finish(
    session: AsyncSession,
    job_id: UUID,
    attempt: int,
    *,
    status: JobStatus,
    result: dict[str, Any] | None = None,
    counts: dict[str, int] | None = None,
    result_bytes: int = 0,
    result_media_type: str | None = None,
    result_filename: str | None = None,
    error: str | None = None,
) -> bool:
    """Record the outcome of a run (its result file, if any, is already in
    chunks: ``result_bytes`` is its size). The job has ended: its upload no
    longer counts, and is deleted by the same statement. False (and nothing
    written) when the run no longer owns the job."""
    params = {
        "job_id": job_id,
        "attempt": attempt,
        "status": status,
        "result": result,
        "result_bytes": result_bytes,
        "result_media_type": result_media_type,
        "result_filename": result_filename,
        "error": error,
        "progress": 100 if status is JobStatus.succeeded else None,
        "counts": counts or {},
    }
    return (await session.execute(ending.finish_statement(), params)).first() is not None


async def requeue(session: AsyncSession, job_id: UUID, attempt: int) -> bool:
    """Put this run's job back in the queue (its next claim is the next
    attempt). False when the run no longer owns the job."""
    statement = (
        update(Job)
        .where(*_this_run(job_id, attempt))
        .values(status=JobStatus.queued, enqueued_at=func.now(), counts={})
        .returning(Job.id)
    )
    return (await session.execute(statement)).first() is not None


async def cancel(session: AsyncSession, owner_id: UUID, job_id: UUID) -> Job | None:
    """Cancel the owner's queued or running job; None when it is not active."""
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.owner_id == owner_id, Job.status.in_(ACTIVE))
        .values(status=JobStatus.cancelled, finished_at=func.now(), counts={}, **_INPUT_RELEASED)
        .returning(Job)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def fail_abandoned(
    session: AsyncSession, *, stale_after: timedelta, max_attempts: int
) -> Sequence[tuple[UUID, str]]:
    """Fail running jobs whose worker went silent on their last allowed
    attempt; returns their ids and kinds."""
    statement = (
        update(Job)
        .where(
            Job.status == JobStatus.running,
            Job.heartbeat_at < func.now() - stale_after,
            Job.attempts >= max_attempts,
        )
        .values(
            status=JobStatus.failed,
            finished_at=func.now(),
            counts={},
            **_INPUT_RELEASED,
            error=func.concat(
                "the worker running this job stopped responding (killed or crashed) on all ",
                Job.attempts,
                f" attempts; giving up (MAX_JOB_ATTEMPTS={max_attempts})",
            ),
        )
        .returning(Job.id, Job.kind)
    )
    return [(job_id, kind) for job_id, kind in await session.execute(statement)]


async def requeue_abandoned(
    session: AsyncSession, *, stale_after: timedelta, max_attempts: int
) -> Sequence[UUID]:
    """Put back in the queue running jobs whose worker went silent (it died),
    while they have attempts left."""
    statement = (
        update(Job)
        .where(
            Job.status == JobStatus.running,
            Job.heartbeat_at < func.now() - stale_after,
            Job.attempts < max_attempts,
        )
        .values(status=JobStatus.queued, enqueued_at=func.now())
        .returning(Job.id)
    )
    return (await session.scalars(statement)).all()


async def resend_due(session: AsyncSession, *, older_than: timedelta, limit: int) -> Sequence[UUID]:
    """Queued jobs whose last message is older than ``older_than``: their
    message was probably lost (broker down, worker killed holding it). Marks
    them as sent now. Rows locked by a concurrent relay are skipped."""
    due = (
        select(Job.id)
        .where(Job.status == JobStatus.queued, Job.enqueued_at < func.now() - older_than)
        .order_by(Job.enqueued_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    statement = update(Job).where(Job.id.in_(due)).values(enqueued_at=func.now()).returning(Job.id)
    return (await session.scalars(statement)).all()


async def count_queued(session: AsyncSession) -> int:
    """How many jobs wait for a worker (an index scan on status)."""
    count = await session.scalar(
        select(func.count()).select_from(Job).where(Job.status == JobStatus.queued)
    )
    return int(count or 0)


async def oldest_queued_age(session: AsyncSession) -> float:
    """Seconds the oldest queued job has waited since it was created, by the
    database clock; 0 when none waits (an index scan on status, created_at)."""
    age = await session.scalar(
        select(func.extract("epoch", func.now() - func.min(Job.created_at))).where(
            Job.status == JobStatus.queued
        )
    )
    return float(age or 0)
