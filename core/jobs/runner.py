"""The worker's side of a job: claim it, run its kind's handler, record the
outcome (see README, Jobs: delivery)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import logging as logging_context
from core import tracing
from core.db import connection_lost, sqlstate, statement_cancelled, transaction
from core.jobs import files, metrics, repository, scheduling, storage
from core.jobs.context import (
    JobContext,
    JobError,
    JobLost,
    ResultFile,
    RunAgain,
    WrittenFile,
)
from core.jobs.kinds import JobKind
from core.models import Job, JobStatus
from core.settings import JobSettings

log = logging.getLogger(__name__)

Outcome = Literal["succeeded", "failed", "requeued", "skipped", "lost"]

# Serialization failure, deadlock, and the server shutting down or not yet
# accepting connections: another attempt may well pass. Also class 08
# (connection exceptions), below.
_RETRY_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03"})


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a database error that another attempt may not meet."""
    if statement_cancelled(exc):
        # Past JOB_STATEMENT_TIMEOUT_SECONDS: another attempt would run as long.
        return False
    if isinstance(exc, DBAPIError) and connection_lost(exc):
        return True
    if isinstance(exc, PoolTimeout):
        return True  # every pooled connection busy: a later attempt finds one
    state = sqlstate(exc)
    if state in _RETRY_SQLSTATES or state.startswith("08"):
        return True
    # The raw driver (COPY goes through it), or what SQLAlchemy wrapped: a
    # connection that broke.
    raw = exc.orig if isinstance(exc, DBAPIError) and exc.orig else exc
    return isinstance(raw, asyncpg.ConnectionDoesNotExistError | ConnectionError)


async def run(
    sessionmaker: async_sessionmaker[AsyncSession],
    job_id: UUID | None,
    *,
    settings: JobSettings,
    kinds: Mapping[str, JobKind],
) -> Outcome:
    """Claim a job and run the handler of its kind in ``kinds``: with
    ``job_id`` None the fairest queued job, which is what a worker does for
    every message (see :mod:`core.jobs.scheduling`); else job ``job_id``
    only. Safe to call any number of times: a call that finds nothing to
    claim does nothing. This is steps 2, 3 and 5 of the delivery protocol in
    the README (Jobs): claim, heartbeat and fenced outcome, transient errors
    back to the queue.
    """
    claimed = await claim(sessionmaker, job_id)
    if claimed is None:
        return "skipped"
    return await run_claimed(sessionmaker, claimed, settings=settings, kinds=kinds)


@dataclass(frozen=True)
class Claimed:
    """A job this process claimed (now ``running``, its attempt counted),
    and the start of its upload, read in the claim's transaction."""

    job: Job
    input_start: files.InputStart | None


async def claim(
    sessionmaker: async_sessionmaker[AsyncSession], job_id: UUID | None
) -> Claimed | None:
    """Claim the fairest queued job (``job_id`` None) or job ``job_id``, in
    one short transaction that also reads the start of its upload. None
    when there is nothing to claim."""
    async with sessionmaker() as session, transaction(session):
        if job_id is None:
            job = await scheduling.claim_fairest(session)
        else:
            job = await repository.claim(session, job_id)
        if job is None:
            if job_id is not None:
                log.info(
                    "job %s is not queued (missing, running elsewhere or done); skipping", job_id
                )
            return None
        start = await files.input_start(session, job.id, job.attempts) if job.input_bytes else None
    return Claimed(job, start)


async def run_claimed(
    sessionmaker: async_sessionmaker[AsyncSession],
    claimed: Claimed,
    *,
    settings: JobSettings,
    kinds: Mapping[str, JobKind],
) -> Outcome:
    """Run a job :func:`claim` returned, to its outcome."""
    job = claimed.job
    # Every line of the run names the job claimed and the request that
    # created it, whichever message woke this process.
    job_token = logging_context.job_id.set(str(job.id))
    request_token = logging_context.request_id.set(job.request_id)
    try:
        started = time.monotonic()
        # With tracing on: a span in the trace of the request that created
        # the job (kept in its row), linked to the message's.
        with tracing.job_span(job.id, job.kind, job.attempts, job.trace_context) as traced:
            ctx = JobContext(job, sessionmaker, settings, prefetched=claimed.input_start)
            outcome = await _run_claimed(ctx, kinds)
            traced(outcome)
            if outcome in ("succeeded", "failed"):
                metrics.FINISHED.labels(job.kind, outcome).inc()
                metrics.DURATION.labels(job.kind, outcome).observe(time.monotonic() - started)
            log.info("job %s: %s", job.id, outcome)
        return outcome
    finally:
        logging_context.request_id.reset(request_token)
        logging_context.job_id.reset(job_token)


async def _run_claimed(ctx: JobContext, kinds: Mapping[str, JobKind]) -> Outcome:
    """Run a claimed job under its heartbeat; every way it can end."""
    heartbeat = asyncio.create_task(ctx.keep_alive(ctx.settings.job_heartbeat_seconds))
    try:
        try:
            await _succeed(ctx, kinds)
        except RunAgain:
            ctx.again = True
            await _succeed(ctx, kinds)
    except JobLost:
        log.info(
            "job %s attempt %d: cancelled or taken over; its work is rolled back",
            ctx.id,
            ctx.attempt,
        )
        return "lost"
    except Exception as exc:
        return await _fail(ctx, exc)
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
    return "succeeded"


async def _succeed(ctx: JobContext, kinds: Mapping[str, JobKind]) -> None:
    """Run the handler and record its output in its own transaction.
    :class:`JobLost` (and everything rolled back) when the run no longer
    owns the job."""
    kind = kinds.get(ctx.job.kind)
    if kind is None:
        raise JobError(f"this worker has no handler for job kind {ctx.job.kind!r}")
    async with ctx.sessionmaker() as session, transaction(session):
        output = await kind.handler(session, ctx)
        file = await _store_result(session, ctx, output.result_file)
        if file is not None and file.size:
            await _check_result_quota(session, ctx, file.size)
        recorded = await repository.finish(
            session,
            ctx.id,
            ctx.attempt,
            status=JobStatus.succeeded,
            result=output.result,
            counts=output.counts,
            result_bytes=file.size if file else 0,
            result_media_type=file.media_type if file else None,
            result_filename=file.filename if file else None,
        )
        if not recorded:
            raise JobLost
        if kind.settle is not None:
            await kind.settle(session, ctx, output)


async def _check_result_quota(session: AsyncSession, ctx: JobContext, size: int) -> None:
    """:class:`JobError` (the run and its file rolled back) when the result
    would take its owner past MAX_STORED_FILE_BYTES_PER_USER."""
    limits = storage.FileLimits.of(ctx.settings)
    if not await storage.fits_result(session, ctx.job.owner_id, ctx.id, size, limits):
        raise JobError(
            f"the result ({size} bytes) would take your stored job files past "
            f"{limits.max_bytes_per_user} bytes (MAX_STORED_FILE_BYTES_PER_USER); "
            "wait for older results to expire (RESULT_RETENTION_HOURS), then run the job again"
        )


async def _store_result(
    session: AsyncSession, ctx: JobContext, file: ResultFile | WrittenFile | None
) -> WrittenFile | None:
    """A small file a handler returned whole, stored in chunks like a
    written one (in the run's transaction, within the owner's quota)."""
    if not isinstance(file, ResultFile):
        return file
    writer = await ctx.result_writer(session, media_type=file.media_type, filename=file.filename)
    await writer.write(file.content)
    return await writer.close()


async def _fail(ctx: JobContext, exc: Exception) -> Outcome:
    """Requeue the job after a transient error while attempts remain; else
    record it ``failed``, with a message its owner may read."""
    settings = ctx.settings
    transient = is_transient(exc)
    if transient and ctx.attempt < settings.max_job_attempts:
        return await _requeue(ctx, exc)
    if isinstance(exc, JobError):
        log.info("job %s failed: %s", ctx.id, exc)
        error = str(exc)
    elif statement_cancelled(exc):
        # The driver's message, without SQLAlchemy's copy of the statement.
        cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig else exc
        log.warning("job %s failed: a statement was cancelled: %s", ctx.id, cause)
        error = (
            "a statement ran longer than JOB_STATEMENT_TIMEOUT_SECONDS "
            f"({settings.job_statement_timeout_seconds:g} s) and was cancelled (or an "
            "operator cancelled it); not retried, as it would run as long again"
        )
    elif transient:
        log.exception("job %s failed", ctx.id)
        error = (
            f"a transient database error ({type(exc).__name__}) on all {ctx.attempt} "
            f"attempts; giving up (MAX_JOB_ATTEMPTS={settings.max_job_attempts})"
        )
    else:
        log.exception("job %s failed", ctx.id)
        error = f"unexpected {type(exc).__name__} in the worker; its log has the details"
    async with ctx.sessionmaker() as session, transaction(session):
        recorded = await repository.finish(
            session, ctx.id, ctx.attempt, status=JobStatus.failed, error=error
        )
    return "failed" if recorded else "lost"


async def _requeue(ctx: JobContext, exc: Exception) -> Outcome:
    """Hand a run that met a transient error back to the queue: any later
    message may claim it, and the relay sends it again once no job was
    claimed for JOB_RESEND_AFTER_SECONDS."""
    log.warning(
        "job %s attempt %d: transient database error (%s: %s); back to the queue",
        ctx.id,
        ctx.attempt,
        type(exc).__name__,
        exc,
    )
    try:
        async with ctx.sessionmaker() as session, transaction(session):
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
