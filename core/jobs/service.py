"""Job logic shared by the API (create, read, cancel), the worker (claim, run)
and the scheduler's relay (recover lost and abandoned jobs).

Delivery works like this:

1. the API commits the job row, then sends a message naming its id; if the
   broker is down the job simply stays ``queued``;
2. a worker claims the job atomically (``queued`` -> ``running``, attempts + 1)
   and runs it; a duplicate message finds it no longer queued and does nothing;
3. the run heartbeats while it works and records its outcome in the same
   transaction as its effects, fenced on its attempt number;
4. the relay re-sends jobs left ``queued`` (lost message) and takes back
   ``running`` jobs whose heartbeat stopped (dead worker), until
   MAX_JOB_ATTEMPTS is spent, after which the job is ``failed``;
5. a run that meets a transient database error (a deadlock, a serialization
   failure, a lost connection) puts its job back in the queue, within the same
   MAX_JOB_ATTEMPTS; any other error fails the job at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal
from uuid import UUID

import asyncpg
from celery import Celery
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import logging as logging_context
from core.db import after_commit, connection_lost, sqlstate, transaction
from core.errors import Conflict, NotFound
from core.items import transfer
from core.jobs import metrics, repository
from core.jobs.context import JobContext, JobError, JobLost, Output
from core.models import Job, JobStatus
from core.queue import send_job
from core.settings import JobSettings

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, JobContext], Awaitable[Output]]
Outcome = Literal["succeeded", "failed", "requeued", "skipped", "lost"]

# Serialization failure, deadlock, and the server shutting down or not yet
# accepting connections: another attempt may well pass. Also class 08
# (connection exceptions), below.
_RETRY_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03"})


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a database error that another attempt may not meet."""
    if isinstance(exc, DBAPIError) and connection_lost(exc):
        return True
    state = sqlstate(exc)
    if state in _RETRY_SQLSTATES or state.startswith("08"):
        return True
    # The raw driver (COPY goes through it), or what SQLAlchemy wrapped: a
    # connection that broke.
    raw = exc.orig if isinstance(exc, DBAPIError) and exc.orig else exc
    return isinstance(raw, asyncpg.ConnectionDoesNotExistError | ConnectionError)


async def _ping(session: AsyncSession, ctx: JobContext, *, identify: bool = False) -> Output:
    """The smallest real job: proves the worker reads and writes Postgres.

    With ``identify`` (outside production, see :func:`handlers`) the result
    also names the host and process that ran it; by default it names
    neither, so that no user learns the workers' identities."""
    result: dict[str, Any] = {"pong": ctx.job.payload.get("message", "pong")}
    if identify:
        result |= {"worker": socket.gethostname(), "pid": os.getpid()}
    return Output(result=result)


async def _crash(session: AsyncSession, ctx: JobContext) -> Output:
    """A poison job: kills the process running it, every time. Only outside
    production, to prove that such a job ends ``failed`` instead of looping."""
    log.warning("job %s: debug.crash is killing worker process %s", ctx.id, os.getpid())
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


PING = "ping"
CRASH = "debug.crash"
HANDLERS: Mapping[str, Handler] = {
    PING: _ping,
    transfer.IMPORT: transfer.import_items,
    transfer.EXPORT: transfer.export_items,
}
# Kinds no API route creates; outside production a test inserts them directly.
DEBUG_HANDLERS: Mapping[str, Handler] = {CRASH: _crash}
KINDS = tuple(HANDLERS)


def handlers(environment: str) -> Mapping[str, Handler]:
    """The handlers a worker in ``environment`` runs."""
    if environment == "production":
        return HANDLERS
    # Pings tell which worker process ran them (tests check that every
    # process takes work); never in production.
    return {**HANDLERS, PING: functools.partial(_ping, identify=True), **DEBUG_HANDLERS}


async def enqueue(
    session: AsyncSession,
    producer: Celery,
    *,
    owner_id: UUID,
    kind: str,
    payload: dict[str, Any],
    input_file: bytes | None = None,
) -> Job:
    """Record a queued job; its message is sent once the transaction commits.
    A failed send leaves the job queued for the relay."""
    if kind not in HANDLERS:
        raise ValueError(f"unknown job kind {kind!r}")
    rid = logging_context.request_id.get()
    job = await repository.create(
        session,
        owner_id=owner_id,
        kind=kind,
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


@dataclass(frozen=True)
class ResultFile:
    """A job's downloadable result."""

    content: bytes
    media_type: str
    filename: str


async def result(
    session: AsyncSession, owner_id: UUID, job_id: UUID
) -> dict[str, Any] | ResultFile:
    """The result of a succeeded job: a file (an export) or JSON (an import's
    report). :class:`Conflict` while the job has no result."""
    job = await get(session, owner_id, job_id)
    if job.status is not JobStatus.succeeded:
        raise Conflict(f"job is {job.status.value}; a result exists only once it has succeeded")
    if job.kind == transfer.EXPORT:
        content = await repository.result_file(session, job_id) or b""
        return ResultFile(content, "text/csv; charset=utf-8", f"items-{job_id}.csv")
    return job.result or {}


async def run(
    sessionmaker: async_sessionmaker[AsyncSession],
    job_id: UUID,
    *,
    settings: JobSettings,
    kinds: Mapping[str, Handler] = HANDLERS,
) -> Outcome:
    """Claim job ``job_id`` and run its handler. Safe to call any number of
    times for the same id: only a call that claims the job runs it."""
    async with sessionmaker() as session, transaction(session):
        job = await repository.claim(session, job_id)
    if job is None:
        log.info("job %s is not queued (missing, running elsewhere or done); skipping", job_id)
        return "skipped"
    if job.request_id:
        # Also when the message came from the relay, without the header.
        logging_context.request_id.set(job.request_id)
    started = time.monotonic()
    outcome = await _run_claimed(sessionmaker, job, settings, kinds)
    if outcome in ("succeeded", "failed"):
        metrics.FINISHED.labels(job.kind, outcome).inc()
        metrics.DURATION.labels(job.kind, outcome).observe(time.monotonic() - started)
    return outcome


async def _run_claimed(
    sessionmaker: async_sessionmaker[AsyncSession],
    job: Job,
    settings: JobSettings,
    kinds: Mapping[str, Handler],
) -> Outcome:
    job_id = job.id
    ctx = JobContext(job, sessionmaker, settings)
    heartbeat = asyncio.create_task(ctx.keep_alive(settings.job_heartbeat_seconds))
    try:
        handler = kinds.get(job.kind)
        if handler is None:
            raise JobError(f"this worker has no handler for job kind {job.kind!r}")
        async with sessionmaker() as session, transaction(session):
            output = await handler(session, ctx)
            recorded = await repository.finish(
                session,
                job_id,
                ctx.attempt,
                status=JobStatus.succeeded,
                result=output.result,
                counts=output.counts,
                result_file=output.result_file,
            )
            if not recorded:
                raise JobLost
    except JobLost:
        log.info(
            "job %s attempt %d: cancelled or taken over; its work is rolled back",
            job_id,
            ctx.attempt,
        )
        return "lost"
    except Exception as exc:
        transient = is_transient(exc)
        if transient and ctx.attempt < settings.max_job_attempts:
            return await _requeue(sessionmaker, ctx, exc)
        if isinstance(exc, JobError):
            log.info("job %s failed: %s", job_id, exc)
            error = str(exc)
        elif transient:
            log.exception("job %s failed", job_id)
            error = (
                f"a transient database error ({type(exc).__name__}) on all {ctx.attempt} "
                f"attempts; giving up (MAX_JOB_ATTEMPTS={settings.max_job_attempts})"
            )
        else:
            log.exception("job %s failed", job_id)
            error = f"unexpected {type(exc).__name__} in the worker; its log has the details"
        async with sessionmaker() as session, transaction(session):
            recorded = await repository.finish(
                session, job_id, ctx.attempt, status=JobStatus.failed, error=error
            )
        return "failed" if recorded else "lost"
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
    return "succeeded"


async def _requeue(
    sessionmaker: async_sessionmaker[AsyncSession], ctx: JobContext, exc: Exception
) -> Outcome:
    """Hand a run that met a transient error back to the queue; the relay
    sends it again after JOB_RESEND_AFTER_SECONDS."""
    log.warning(
        "job %s attempt %d: transient database error (%s: %s); back to the queue",
        ctx.id,
        ctx.attempt,
        type(exc).__name__,
        exc,
    )
    try:
        async with sessionmaker() as session, transaction(session):
            owned = await repository.requeue(session, ctx.id, ctx.attempt)
    except Exception as again:  # the database is still away
        log.warning(
            "job %s: could not requeue it (%s); the relay takes it back once its "
            "heartbeat is stale",
            ctx.id,
            again,
        )
        return "requeued"
    return "requeued" if owned else "lost"


@dataclass(frozen=True)
class RelayReport:
    """What one relay pass did."""

    failed: Sequence[UUID]
    requeued: Sequence[UUID]
    resent: Sequence[UUID]
    sent: int


async def relay(
    sessionmaker: async_sessionmaker[AsyncSession],
    producer: Celery,
    settings: JobSettings,
    *,
    limit: int = 1000,
) -> RelayReport:
    """Recover jobs: fail those out of attempts whose worker died, take back
    the other abandoned ones, and re-send queued jobs whose message is overdue.
    Safe to run concurrently (row locks are skipped, updates are conditional)."""
    stale_after = timedelta(seconds=settings.job_stale_after_seconds)
    async with sessionmaker() as session, transaction(session):
        abandoned = await repository.fail_abandoned(
            session, stale_after=stale_after, max_attempts=settings.max_job_attempts
        )
        requeued = await repository.requeue_abandoned(
            session, stale_after=stale_after, max_attempts=settings.max_job_attempts
        )
        resent = await repository.resend_due(
            session,
            older_than=timedelta(seconds=settings.job_resend_after_seconds),
            limit=limit,
        )
    sent = 0
    for job_id in (*requeued, *resent):
        if not await send_job(producer, job_id):
            break  # the broker is down; the rest go out on a later pass
        sent += 1
    for _, kind in abandoned:
        metrics.FINISHED.labels(kind, "failed").inc()
    failed = [job_id for job_id, _ in abandoned]
    async with sessionmaker() as session:
        metrics.QUEUE_DEPTH.set(await repository.count_queued(session))
    report = RelayReport(failed, requeued, resent, sent)
    if failed or requeued or resent:
        log.info(
            "relay: %d failed (out of attempts), %d taken back from dead workers, "
            "%d re-sent; %d messages sent",
            len(failed),
            len(requeued),
            len(resent),
            sent,
        )
    return report
