"""How a run of a job ends: the fence every write of a run matches on, and
the statement that records its outcome (see README, Jobs: delivery)."""

from __future__ import annotations

import functools
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Select, bindparam, delete, func, select, update

from core.models import Job, JobFile, JobFileRole, JobStatus

# What ending a job sets: its upload no longer counts against the owner's
# quota (its chunks are deleted in the same transaction), and a copy the
# release before chunks stored in the row goes too.
INPUT_RELEASED: dict[str, Any] = {"input_bytes": 0, "input_file": None}


def this_run(job_id: Any, attempt: Any) -> tuple[ColumnElement[bool], ...]:
    """The job as run ``attempt`` owns it (values or bound parameters)."""
    return (Job.id == job_id, Job.attempts == attempt, Job.status == JobStatus.running)


# What a run's end sets from its parameters (typed as their columns).
_OUTCOME = ("status", "result", "result_bytes", "result_media_type", "result_filename", "error")


@functools.cache
def finish_statement() -> Select[UUID]:
    """The statement of :func:`core.jobs.repository.finish`, built once with
    parameters: every run ends with it, and building it cost more of the
    worker's CPU than running it."""
    columns = Job.__table__.c
    values: dict[str, Any] = {
        name: bindparam(name, type_=columns[name].type) for name in (*_OUTCOME, "counts")
    }
    fence = this_run(bindparam("job_id"), bindparam("attempt"))
    run = (
        update(Job)
        .where(*fence)
        .values(
            **values,
            **INPUT_RELEASED,
            # A success is complete; anything else keeps the last progress.
            progress=func.coalesce(
                bindparam("progress", type_=columns.progress.type), Job.progress
            ),
            # The run's transaction may be long: record when it really ended.
            finished_at=func.clock_timestamp(),
            heartbeat_at=func.clock_timestamp(),
        )
    )
    ended = run.returning(Job.id).cte("ended")
    # The upload goes in the same statement (one round trip fewer per run),
    # and only when the run still owned the job.
    upload = delete(JobFile).where(
        JobFile.job_id.in_(select(ended.c.id)), JobFile.role == JobFileRole.input
    )
    return select(ended.c.id).add_cte(upload.cte("released"))
