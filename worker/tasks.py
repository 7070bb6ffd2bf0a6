"""Tasks: thin sync wrappers that take ids and run domain coroutines."""

from __future__ import annotations

import logging
from uuid import UUID

from core.jobs import service
from core.queue import TASK_RUN_JOB
from worker.app import app
from worker.runner import run

log = logging.getLogger(__name__)


@app.task(name=TASK_RUN_JOB)
def run_job(job_id: str) -> str:
    """Run job ``job_id``. Idempotent: a duplicate message finds the job no
    longer queued and does nothing."""
    outcome = run(lambda sessionmaker: service.run(sessionmaker, UUID(job_id)))
    log.info("job %s: %s", job_id, outcome)
    return outcome
