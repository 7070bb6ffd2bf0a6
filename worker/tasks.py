"""Tasks: thin sync wrappers that take ids and run domain coroutines."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import transaction
from core.jobs import relay as job_relay
from core.jobs import runner as job_runner
from core.jobs import storage as job_storage
from core.jobs_index import job_kinds
from core.queue import (
    SEND_RETRY_POLICY,
    TASK_PURGE_RESULTS,
    TASK_RELAY,
    TASK_RUN_JOB,
    TASK_SESSION_CLEANUP,
    TASK_TIME_LIMIT_SECONDS,
)
from core.settings import get_settings
from core.users import sessions
from worker.app import app
from worker.runner import run, start_in_background

log = logging.getLogger(__name__)
# The job kinds this worker runs (the poison kind only outside production).
KINDS = job_kinds(get_settings().app.environment)


# Seconds before a worker is woken for a job handed back after a transient error.
REQUEUE_WAKE_SECONDS = 2


@app.task(name=TASK_RUN_JOB)
def run_job(job_id: str) -> str:
    """Claim the fairest queued job (see :mod:`core.jobs.scheduling`) once
    this process has a free place (WORKER_JOBS_PER_PROCESS), and run it on
    the process's loop: the task ends, and its message is acknowledged, once
    the claim is committed, and the job runs on beside the process's others.
    The message for job ``job_id`` only woke this process: the job claimed
    may be another, and the message finds nothing to do when no job is left
    queued. A process dying mid-run leaves its job ``running`` with a
    heartbeat that goes stale, and the relay takes it back (README, Jobs)."""

    async def take(sessionmaker: async_sessionmaker[AsyncSession]) -> object:
        async def work(claimed: job_runner.Claimed) -> None:
            await _run_claimed(sessionmaker, claimed, job_id)

        return await start_in_background(lambda: job_runner.claim(sessionmaker, None), work)

    if run(take) is None:
        log.info("message for job %s: no queued job left to claim", job_id)
        return "skipped"
    return "claimed"


async def _run_claimed(
    sessionmaker: async_sessionmaker[AsyncSession], claimed: job_runner.Claimed, job_id: str
) -> None:
    """A claimed job to its outcome, within the time a task may take."""
    settings = get_settings().jobs
    try:
        async with asyncio.timeout(TASK_TIME_LIMIT_SECONDS):
            outcome = await job_runner.run_claimed(
                sessionmaker, claimed, settings=settings, kinds=KINDS
            )
    except TimeoutError:
        # Rolled back; its heartbeat stops, and the relay takes it back.
        log.error("job %s ran past %d s; stopped", claimed.job.id, TASK_TIME_LIMIT_SECONDS)
        return
    if outcome == "requeued":
        # The job went back to the queue without a message of its own: wake
        # a worker for it, a moment later (the database may still be away).
        # Under a steady load the relay would not, as jobs are being claimed.
        await asyncio.to_thread(_wake, job_id)


def _wake(job_id: str) -> None:
    try:
        app.send_task(
            TASK_RUN_JOB,
            args=[job_id],
            countdown=REQUEUE_WAKE_SECONDS,
            retry=True,
            retry_policy=SEND_RETRY_POLICY,
        )
    except Exception as exc:  # the broker is away too: the relay sends it
        log.warning("could not send a message for a requeued job: %s", exc)


@app.task(name=TASK_RELAY)
def relay() -> dict[str, int]:
    """Re-send lost jobs and recover those of dead workers (see
    :func:`core.jobs.relay.relay`). The scheduler sends this every
    RELAY_INTERVAL_SECONDS."""
    report = run(lambda sessionmaker: job_relay.relay(sessionmaker, app, get_settings().jobs))
    return {
        "failed": len(report.failed),
        "requeued": len(report.requeued),
        "resent": len(report.resent),
        "sent": report.sent,
    }


@app.task(name=TASK_SESSION_CLEANUP)
def cleanup_sessions() -> dict[str, int]:
    """Delete logins (auth sessions) and refresh tokens expired for over a
    day. The scheduler sends this hourly."""

    async def clean(sessionmaker: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
        async with sessionmaker() as session, transaction(session):
            return await sessions.cleanup(session)

    deleted_sessions, deleted_tokens = run(clean)
    log.info(
        "deleted %d expired sessions, %d expired refresh tokens",
        *(deleted_sessions, deleted_tokens),
    )
    return {"sessions": deleted_sessions, "refresh_tokens": deleted_tokens}


@app.task(name=TASK_PURGE_RESULTS)
def purge_results() -> dict[str, int]:
    """Delete job result files older than RESULT_RETENTION_HOURS (the jobs
    stay). The scheduler sends this every RESULT_PURGE_INTERVAL_SECONDS."""
    limits = job_storage.FileLimits.of(get_settings().jobs)
    purged = run(lambda sessionmaker: job_storage.purge_expired(sessionmaker, limits))
    return {"results": purged}
