"""Tasks: thin sync wrappers that take ids and run domain coroutines."""

from __future__ import annotations

import logging
from uuid import UUID

from core.jobs import service
from core.queue import TASK_RELAY, TASK_RUN_JOB
from core.settings import get_settings
from worker.app import app
from worker.runner import run

log = logging.getLogger(__name__)
# The job kinds this worker runs (the poison kind only outside production).
KINDS = service.handlers(get_settings().app.environment)


@app.task(name=TASK_RUN_JOB)
def run_job(job_id: str) -> str:
    """Run job ``job_id``. Idempotent: a duplicate message finds the job no
    longer queued and does nothing."""
    settings = get_settings().jobs
    outcome = run(
        lambda sessionmaker: service.run(sessionmaker, UUID(job_id), settings=settings, kinds=KINDS)
    )
    log.info("job %s: %s", job_id, outcome)
    return outcome


@app.task(name=TASK_RELAY)
def relay() -> dict[str, int]:
    """Re-send lost jobs and recover those of dead workers (see
    :func:`core.jobs.service.relay`). The scheduler sends this every
    RELAY_INTERVAL_SECONDS."""
    report = run(lambda sessionmaker: service.relay(sessionmaker, app, get_settings().jobs))
    return {
        "failed": len(report.failed),
        "requeued": len(report.requeued),
        "resent": len(report.resent),
        "sent": report.sent,
    }
