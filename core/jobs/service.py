"""Jobs as their owners see them: create, list, read, cancel, and fetch a
result. The worker's side is :mod:`core.jobs.runner` and
:mod:`core.jobs.relay`; see README, Jobs: delivery."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from celery import Celery
from sqlalchemy.ext.asyncio import AsyncSession

from core import logging as logging_context
from core.db import after_commit
from core.errors import Conflict, NotFound
from core.jobs import repository
from core.jobs.context import ResultFile
from core.jobs.kinds import JobKind
from core.models import Job, JobStatus
from core.queue import send_job

__all__ = ["ResultFile", "cancel", "enqueue", "get", "page", "result"]


async def enqueue(
    session: AsyncSession,
    producer: Celery,
    *,
    owner_id: UUID,
    kind: JobKind,
    payload: dict[str, Any],
    input_file: bytes | None = None,
) -> Job:
    """Record a queued job; its message is sent once the transaction commits.
    A failed send leaves the job queued for the relay. Debug kinds are never
    created this way."""
    if not isinstance(kind, JobKind) or kind.debug:
        name = kind.name if isinstance(kind, JobKind) else kind
        raise ValueError(f"unknown job kind {name!r}")
    rid = logging_context.request_id.get()
    job = await repository.create(
        session,
        owner_id=owner_id,
        kind=kind.name,
        payload=payload,
        input_file=input_file,
        request_id=rid,
    )
    job_id = job.id

    async def _send() -> None:
        await send_job(producer, job_id, request_id=rid)

    after_commit(session, _send)
    return job


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
    """Cancel a queued or running job. A running job's work is rolled back at
    its next progress report or when it tries to record its outcome."""
    job = await repository.cancel(session, owner_id, job_id)
    if job is None:
        existing = await get(session, owner_id, job_id)
        raise Conflict(
            f"job is already {existing.status.value}; only queued or running jobs can be cancelled"
        )
    return job


async def result(
    session: AsyncSession, owner_id: UUID, job_id: UUID
) -> dict[str, Any] | ResultFile:
    """The result of a succeeded job: the file it produced, if it produced
    one, else its JSON result. :class:`Conflict` while the job has no result."""
    job = await get(session, owner_id, job_id)
    if job.status is not JobStatus.succeeded:
        raise Conflict(f"job is {job.status.value}; a result exists only once it has succeeded")
    if job.result_media_type is not None:
        content = await repository.result_file(session, job_id) or b""
        filename = job.result_filename or f"{job.kind}-{job_id}"
        return ResultFile(content, job.result_media_type, filename)
    untyped = await repository.result_file(session, job_id)
    if untyped is not None:
        # A file without a type: written by a worker of the release before
        # these columns, finishing during a rolling update.
        return ResultFile(untyped, "application/octet-stream", f"{job.kind}-{job_id}")
    return job.result or {}
