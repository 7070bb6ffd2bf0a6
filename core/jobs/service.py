"""Job logic shared by the API (create, read) and the worker (claim, run)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Literal
from uuid import UUID

from celery import Celery
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import after_commit, transaction
from core.errors import NotFound
from core.jobs import repository
from core.models import Job, JobStatus
from core.queue import send_job

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, Job], Awaitable[dict[str, Any]]]
Outcome = Literal["succeeded", "failed", "skipped"]


async def _ping(session: AsyncSession, job: Job) -> dict[str, Any]:
    """The smallest real job: proves the worker reads and writes Postgres."""
    return {
        "pong": job.payload.get("message", "pong"),
        "worker": socket.gethostname(),
        "pid": os.getpid(),
    }


HANDLERS: dict[str, Handler] = {"ping": _ping}


async def enqueue(
    session: AsyncSession,
    producer: Celery,
    *,
    kind: str,
    payload: dict[str, Any],
    owner_id: UUID | None = None,
) -> Job:
    """Record a queued job; its message is sent once the transaction commits."""
    if kind not in HANDLERS:
        raise ValueError(f"unknown job kind {kind!r}")
    job = await repository.create(session, kind=kind, payload=payload, owner_id=owner_id)
    job_id = job.id

    async def _send() -> None:
        await send_job(producer, job_id)

    after_commit(session, _send)
    return job


async def get(session: AsyncSession, job_id: UUID, *, owner_id: UUID | None = None) -> Job:
    """The job (only if ``owner_id`` owns it, when given), or :class:`NotFound`."""
    if owner_id is None:
        job = await repository.get(session, job_id)
    else:
        job = await repository.get_owned(session, owner_id, job_id)
    if job is None:
        raise NotFound("job not found")
    return job


async def run(sessionmaker: async_sessionmaker[AsyncSession], job_id: UUID) -> Outcome:
    """Claim job ``job_id`` and run its handler. Safe to call twice for the same
    id: only the call that claims the job runs it."""
    async with sessionmaker() as session, transaction(session):
        job = await repository.claim(session, job_id)
    if job is None:
        log.info("job %s is not queued (missing, running elsewhere or done); skipping", job_id)
        return "skipped"

    handler = HANDLERS.get(job.kind)
    try:
        if handler is None:
            raise LookupError(f"no handler for job kind {job.kind!r}")
        async with sessionmaker() as session, transaction(session):
            result = await handler(session, job)
            await repository.finish(session, job_id, status=JobStatus.succeeded, result=result)
    except Exception as exc:
        log.exception("job %s failed", job_id)
        async with sessionmaker() as session, transaction(session):
            await repository.finish(
                session, job_id, status=JobStatus.failed, error=f"{type(exc).__name__}: {exc}"
            )
        return "failed"
    return "succeeded"
