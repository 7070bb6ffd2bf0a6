"""Tasks: thin sync wrappers that take ids and run domain coroutines."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from celery import Task
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import logging as logs
from core.db import transaction
from core.jobs import relay as job_relay
from core.jobs import runner as job_runner
from core.jobs_index import job_kinds
from core.queue import REQUEST_ID_HEADER, TASK_RELAY, TASK_RUN_JOB, TASK_SESSION_CLEANUP
from core.settings import get_settings
from core.users import sessions
from worker.app import app
from worker.runner import run

log = logging.getLogger(__name__)
# The job kinds this worker runs (the poison kind only outside production).
KINDS = job_kinds(get_settings().app.environment)


@app.task(name=TASK_RUN_JOB, bind=True)
def run_job(self: Task[Any, Any], job_id: str) -> str:
    """Run job ``job_id``. Idempotent: a duplicate message finds the job no
    longer queued and does nothing. Every log line of the run carries the job
    id and the id of the API request that created the job."""
    settings = get_settings().jobs
    request_token = logs.request_id.set(self.request.get(REQUEST_ID_HEADER))
    job_token = logs.job_id.set(job_id)
    try:
        outcome = run(
            lambda sessionmaker: job_runner.run(
                sessionmaker, UUID(job_id), settings=settings, kinds=KINDS
            )
        )
        log.info("job %s: %s", job_id, outcome)
        return outcome
    finally:
        logs.job_id.reset(job_token)
        logs.request_id.reset(request_token)


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
