"""Jobs as their owners see them: create, list, read, cancel, and fetch a
result. The worker's side is :mod:`core.jobs.runner` and
:mod:`core.jobs.relay`; see README, Jobs: delivery."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from core import logging as logging_context
from core import tracing
from core.db import after_commit
from core.errors import Conflict, NotFound
from core.jobs import files, repository, scheduling, storage
from core.jobs.context import ResultFile
from core.jobs.kinds import JobKind
from core.models import Job, JobStatus
from core.queue import Producer, send_job
from core.settings import get_settings

# The stored-files quota and retention (MAX_STORED_FILE_BYTES_PER_USER,
# RESULT_RETENTION_HOURS); a job's result file as stored, and its bytes read
# back one chunk at a time.
FileLimits = storage.FileLimits
StoredFile = storage.StoredFile
read_file = storage.read

__all__ = [
    "FileLimits",
    "ResultFile",
    "StoredFile",
    "cancel",
    "enqueue",
    "get",
    "page",
    "read_file",
    "result",
]

# Above this many bytes, an upload's quotas are checked before it is written
# as well as under the owner's lock after.
PRECHECK_MIN_BYTES = 64 * 1024


async def enqueue(
    session: AsyncSession,
    producer: Producer,
    *,
    owner_id: UUID,
    kind: JobKind,
    payload: dict[str, Any],
    input_file: bytes | None = None,
    max_active_jobs: int | None = None,
    file_limits: storage.FileLimits | None = None,
) -> Job:
    """Record a queued job; its message is sent once the transaction commits.
    A failed send leaves the job queued for the relay. Debug kinds are never
    created this way. :class:`QuotaExceeded` when the owner already has
    ``max_active_jobs`` (default MAX_ACTIVE_JOBS_PER_USER) queued or running,
    or when ``input_file`` (stored with the job, in chunks) would take their
    stored job files past ``file_limits`` (default MAX_STORED_FILE_BYTES_PER_USER),
    or, for a kind that makes a file, when they are at that limit already."""
    if not isinstance(kind, JobKind) or kind.debug:
        name = kind.name if isinstance(kind, JobKind) else kind
        raise ValueError(f"unknown job kind {name!r}")
    if max_active_jobs is None:
        max_active_jobs = get_settings().jobs.max_active_jobs_per_user
    limits = file_limits or storage.FileLimits.of(get_settings().jobs)
    incoming = None if input_file is None else len(input_file)
    if incoming is not None and incoming > PRECHECK_MIN_BYTES:
        # Without the lock first: an owner over a quota is refused before
        # megabytes of upload are written only to be rolled back. A small
        # file costs less to write and roll back than this extra query costs
        # every submit.
        await _check_quotas(session, owner_id, kind, max_active_jobs, limits, incoming, None)
    rid = logging_context.request_id.get()
    job = await repository.create(
        session,
        owner_id=owner_id,
        kind=kind.name,
        payload=payload,
        input_file=input_file,
        request_id=rid,
        # The request's trace, which the run joins (None with tracing off).
        trace_context=tracing.carrier(),
    )
    # Then under the owner's lock, the job and its file already written: the
    # lock is held for two counts and the commit, not while the upload is
    # written (one user's uploads would queue on it). A refusal rolls the
    # whole insert back.
    await _check_quotas(session, owner_id, kind, max_active_jobs, limits, incoming, job.id)
    job_id = job.id

    async def _send() -> None:
        await send_job(producer, job_id, request_id=rid)

    after_commit(session, _send)
    return job


async def _check_quotas(
    session: AsyncSession,
    owner_id: UUID,
    kind: JobKind,
    max_active_jobs: int,
    limits: storage.FileLimits,
    incoming: int | None,
    new_job: UUID | None,
) -> None:
    """The active-jobs and stored-files quotas; under the owner's lock once
    the new job is inserted (``new_job``), without it before."""
    locked = new_job is not None
    if incoming is None and not kind.makes_file:
        await scheduling.check_active_quota(
            session, owner_id, max_active_jobs, except_job=new_job, lock=locked
        )
        return
    if locked:
        await repository.lock_owner(session, owner_id)
    # Both quotas from one query (one round trip fewer while the lock is held).
    used = await files.usage(session, owner_id, retention=limits.retention, except_job=new_job)
    scheduling.refuse_past_active_quota(used.active, max_active_jobs)
    storage.refuse_past_quota(used, limits, incoming)


async def get(session: AsyncSession, owner_id: UUID, job_id: UUID) -> Job:
    """The owner's job. Another user's job is reported exactly like a missing one."""
    job = await repository.get_owned(session, owner_id, job_id)
    if job is None:
        raise NotFound("job not found")
    return job


async def page(
    session: AsyncSession,
    owner_id: UUID,
    *,
    status: JobStatus | None,
    kind: str | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[Job], int]:
    """A page of the owner's jobs (of one status or kind, when given), newest
    first, and how many match in all."""
    return await repository.page(
        session, owner_id, limit=limit, offset=offset, status=status, kind=kind
    )


async def cancel(session: AsyncSession, owner_id: UUID, job_id: UUID) -> Job:
    """Cancel a queued or running job; its upload is deleted. A running
    job's work is rolled back at its next progress report or read of its
    upload, or when it tries to record its outcome."""
    job = await repository.cancel(session, owner_id, job_id)
    if job is None:
        existing = await get(session, owner_id, job_id)
        raise Conflict(
            f"job is already {existing.status.value}; only queued or running jobs can be cancelled"
        )
    await files.delete_inputs(session, [job.id])
    return job


async def result(
    session: AsyncSession, owner_id: UUID, job_id: UUID, *, retention_hours: int | None = None
) -> dict[str, Any] | StoredFile:
    """The result of a succeeded job: the file it produced, if it produced
    one (read it with :func:`read_file`), else its JSON result.
    :class:`Conflict` while the job has no result; :class:`Gone` once its
    file is older than ``retention_hours`` (default RESULT_RETENTION_HOURS)."""
    job = await get(session, owner_id, job_id)
    if job.status is not JobStatus.succeeded:
        raise Conflict(f"job is {job.status.value}; a result exists only once it has succeeded")
    if retention_hours is None:
        retention_hours = get_settings().jobs.result_retention_hours
    file = await storage.result_file(session, job, retention_hours=retention_hours)
    return job.result or {} if file is None else file
