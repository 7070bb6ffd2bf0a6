"""SQL for job files: their chunks (``job_files``), the byte counts on
``jobs`` that the per-user quota adds up, and the retention purge. No
commits here: the session's owner commits (see README, Jobs: files).

A file is cut into chunks of :data:`CHUNK_BYTES`, one row each, so that it
is written and read one chunk per statement and no process ever holds more
of it than that.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Interval, Select, bindparam, delete, extract, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.models import Job, JobFile, JobFileRole, JobStatus

_ACTIVE = (JobStatus.queued, JobStatus.running)

# 1 MiB: few statements per file (20 for the largest upload), little memory
# per reader or writer, and well under what Postgres moves comfortably in
# one value.
CHUNK_BYTES = 1024 * 1024

# A raw statement, so that a memoryview goes to asyncpg as it is (SQLAlchemy's
# binary type would copy it into bytes first).
_INSERT = text(
    "INSERT INTO job_files (job_id, role, seq, data) VALUES (:job_id, :role, :seq, :data)"
)


def chunk_count(size: int) -> int:
    """How many chunks a file of ``size`` bytes has (none when it is empty)."""
    return -(-size // CHUNK_BYTES)


async def insert_chunk(
    session: AsyncSession, job_id: UUID, role: JobFileRole, seq: int, data: bytes | memoryview
) -> None:
    """Store chunk ``seq`` of a job's file."""
    await session.execute(_INSERT, {"job_id": job_id, "role": role.value, "seq": seq, "data": data})


async def store(session: AsyncSession, job_id: UUID, role: JobFileRole, data: bytes) -> int:
    """Store ``data`` whole as the job's file ``role``, a chunk per
    statement, each a view into ``data`` (no copy); returns its size."""
    with memoryview(data) as view:
        for seq, offset in enumerate(range(0, len(view), CHUNK_BYTES)):
            with view[offset : offset + CHUNK_BYTES] as chunk:
                await insert_chunk(session, job_id, role, seq, chunk)
    return len(data)


async def read_chunk(
    session: AsyncSession, job_id: UUID, role: JobFileRole, seq: int
) -> bytes | None:
    """Chunk ``seq`` of a job's file; None when it is not (or no longer) stored."""
    return await session.scalar(
        select(JobFile.data).where(
            JobFile.job_id == job_id, JobFile.role == role, JobFile.seq == seq
        )
    )


@dataclass(frozen=True)
class InputStart:
    """What a run learns of its upload in one query: its stored size,
    whether the release before chunks stored it in ``jobs.input_file``
    instead, and its first chunk (None when it has none)."""

    size: int
    legacy: bool
    first: bytes | None


async def input_start(session: AsyncSession, job_id: UUID, attempt: int) -> InputStart | None:
    """The start of the upload of run ``attempt`` of the job (a small file
    is read whole in this one query); None when that run no longer owns the
    job (its upload may be gone with it)."""
    params = {"job_id": job_id, "attempt": attempt}
    row = (await session.execute(_input_start(), params)).first()
    return None if row is None else InputStart(int(row[0]), bool(row[1]), row[2])


@functools.cache
def _input_start() -> Select[int, bool, bytes]:
    """:func:`input_start`'s query, built once (each run reads it; building
    it cost more CPU than running it)."""
    first = aliased(JobFile)
    return (
        select(Job.input_bytes, Job.input_file.is_not(None), first.data)
        .outerjoin(
            first,
            (first.job_id == Job.id) & (first.role == JobFileRole.input) & (first.seq == 0),
        )
        .where(
            Job.id == bindparam("job_id"),
            Job.attempts == bindparam("attempt"),
            Job.status == JobStatus.running,
        )
    )


async def legacy_input(session: AsyncSession, job_id: UUID) -> bytes | None:
    """The upload as the release before chunks stored it (a job it created
    during a rolling update)."""
    return await session.scalar(select(Job.input_file).where(Job.id == job_id))


async def legacy_result_size(session: AsyncSession, job_id: UUID) -> int | None:
    """The size of a result the release before chunks stored in
    ``jobs.result_file`` (a run it finished during a rolling update); None
    when there is none."""
    size = await session.scalar(select(func.octet_length(Job.result_file)).where(Job.id == job_id))
    return None if size is None else int(size)


async def legacy_result(session: AsyncSession, job_id: UUID) -> bytes | None:
    """That result itself."""
    return await session.scalar(select(Job.result_file).where(Job.id == job_id))


async def delete_inputs(session: AsyncSession, job_ids: Sequence[UUID]) -> None:
    """Delete the uploads of jobs that have ended (their byte counts are
    reset by the update that ended them)."""
    if job_ids:
        await session.execute(
            delete(JobFile).where(JobFile.job_id.in_(job_ids), JobFile.role == JobFileRole.input)
        )


@dataclass(frozen=True)
class Usage:
    """One owner's stored job files: bytes in all, and when waiting frees
    some (``None``: it never does by waiting)."""

    stored: int
    inputs_held: bool
    # Seconds until the oldest stored result expires.
    next_expiry_seconds: float | None
    # The owner's queued and running jobs (counted by the same query, for
    # the active-jobs quota).
    active: int = 0


async def usage(
    session: AsyncSession,
    owner_id: UUID,
    *,
    retention: timedelta,
    except_job: UUID | None = None,
) -> Usage:
    """What the owner's job files take: uploads of jobs not yet ended, and
    results not yet expired (an expired result no longer counts, purged or
    not). ``except_job`` leaves one job out (a run measuring the others)."""
    parameters = {"owner_id": owner_id, "retention": retention, "except_job": except_job}
    result = await session.execute(_usage_statement(except_job is not None), parameters)
    stored, inputs_held, next_expiry, count = result.one()
    expiry = None if next_expiry is None else float(next_expiry)
    return Usage(int(stored), bool(inputs_held), expiry, int(count))


@functools.cache
def _usage_statement(except_job: bool) -> Select[int, Any, int, int]:
    """The query of :func:`usage`, built once with parameters: every submit
    runs it under the owner's lock, and building it took longer than
    running it."""
    expires = Job.finished_at + bindparam("retention", type_=Interval())
    live = Job.result_bytes > 0
    # An upload counts while its job is active: a job the previous release
    # ended during a rolling update kept its input_bytes, but not its turn.
    held = func.coalesce(func.sum(Job.input_bytes).filter(Job.status.in_(_ACTIVE)), 0)
    fresh = expires > func.now()
    active = Job.status.in_(_ACTIVE)
    query = select(
        held + func.coalesce(func.sum(Job.result_bytes).filter(fresh), 0),
        func.coalesce(func.bool_or((Job.input_bytes > 0) & active), False),
        extract("epoch", func.min(expires).filter(live, fresh) - func.now()),
        func.count().filter(active),
    ).where(
        Job.owner_id == bindparam("owner_id"),
        (Job.input_bytes > 0) | (Job.result_bytes > 0) | active,
    )
    if except_job:
        query = query.where(Job.id != bindparam("except_job"))
    return query


async def purge_expired_results(
    session: AsyncSession, *, retention: timedelta, limit: int
) -> Sequence[UUID]:
    """Delete up to ``limit`` result files kept ``retention`` past their
    job's end, oldest first, and mark their jobs purged; returns those jobs'
    ids. Rows locked by a concurrent purge are skipped."""
    due = (
        select(Job.id)
        .where(
            Job.result_media_type.is_not(None),
            Job.result_purged_at.is_(None),
            Job.finished_at < func.now() - retention,
        )
        .order_by(Job.finished_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    statement = (
        update(Job)
        .where(Job.id.in_(due))
        .values(result_bytes=0, result_file=None, result_purged_at=func.now())
        .returning(Job.id)
    )
    purged = (await session.scalars(statement)).all()
    if purged:
        await session.execute(
            delete(JobFile).where(JobFile.job_id.in_(purged), JobFile.role == JobFileRole.result)
        )
    return purged
