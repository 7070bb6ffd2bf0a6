"""Which queued job runs next, and how many one user may have (see README,
Jobs: delivery). No commits here: the session's owner commits.

A broker message only wakes a worker process, which claims the fairest
queued job, not necessarily the one the message named: the oldest queued job
of the owner with the fewest running jobs; between owners with as many
running, the one served least recently (its latest claim is oldest, or it
has none), then the one whose oldest queued job is oldest. So one user's
backlog never starves another's job.

The middle key makes equal owners take turns. Without it a tie went to the
oldest queue head, which is first come, first served again: with short jobs
an owner's running count is often 0 at the instant of a claim, and another
owner's job waited behind a whole backlog (seconds, measured).
"""

from __future__ import annotations

import functools
from datetime import timedelta
from uuid import UUID

from sqlalchemy import ColumnElement, Update, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.errors import QuotaExceeded
from core.jobs import repository
from core.jobs.repository import ACTIVE
from core.models import Job, JobStatus

# What a submitter refused by the active-jobs quota is told to wait: a job
# typically ends within seconds, which frees a place.
QUOTA_RETRY_AFTER_SECONDS = 5


def _fairest_queued() -> ColumnElement[UUID]:
    """The id of the fairest queued job that no other transaction has locked
    (the order is in the module's docstring).

    Every queued row is ordered, not just each owner's oldest: when the
    fairest row is locked (another worker is claiming it), ``SKIP LOCKED``
    moves on to the next one, so a message never finds nothing while an
    unlocked job waits. The aggregates read the partial index of active
    jobs (as large as the queue, not the table) and one probe per queued
    owner of ``ix_jobs_owner_id_started_at``.
    """
    job = aliased(Job, name="candidate")  # never correlated with the UPDATE's row
    served = aliased(Job, name="served")
    running = (
        select(Job.owner_id, func.count().label("running"))
        .where(Job.status == JobStatus.running)
        .group_by(Job.owner_id)
        .subquery("running")
    )
    last_claim = (
        select(func.max(served.started_at))
        .where(served.owner_id == Job.owner_id)
        .correlate(Job)
        .scalar_subquery()
    )
    heads = (
        select(
            Job.owner_id,
            func.min(Job.created_at).label("oldest"),
            last_claim.label("last_claim"),
        )
        .where(Job.status == JobStatus.queued)
        .group_by(Job.owner_id)
        .subquery("heads")
    )
    return (
        select(job.id)
        .join(heads, heads.c.owner_id == job.owner_id)
        .outerjoin(running, running.c.owner_id == job.owner_id)
        .where(job.status == JobStatus.queued)
        .order_by(
            func.coalesce(running.c.running, 0),
            heads.c.last_claim.asc().nulls_first(),
            heads.c.oldest,
            job.created_at,
            job.id,
        )
        .limit(1)
        # NO KEY UPDATE: the lock the UPDATE below takes anyway; it does not
        # conflict with the KEY SHARE locks of rows that reference the job.
        .with_for_update(of=job, skip_locked=True, key_share=True)
        .scalar_subquery()
    )


@functools.cache
def _claim_fairest() -> Update:
    """The claim's statement, built once: it has no parameters, and building
    its expression (aliases, three subqueries) cost more of the worker's CPU
    than running it."""
    return (
        update(Job)
        .where(Job.id == _fairest_queued(), Job.status == JobStatus.queued)
        .values(
            status=JobStatus.running,
            attempts=Job.attempts + 1,
            progress=0,
            counts={},
            # The statement's time, not the transaction's: the next claims
            # order owners by it.
            started_at=func.clock_timestamp(),
            heartbeat_at=func.clock_timestamp(),
        )
        .returning(Job)
        .execution_options(**repository.CLAIM_OPTIONS)
    )


async def claim_fairest(session: AsyncSession) -> Job | None:
    """Atomically move the fairest queued job to running and count the
    attempt, in one statement. Concurrent claims never take the same job
    (row locks, skipped by the others). None when no queued job is left
    unlocked: the message that asked is a no-op."""
    return (await session.execute(_claim_fairest())).scalar_one_or_none()


async def count_active(
    session: AsyncSession, owner_id: UUID, *, except_job: UUID | None = None
) -> int:
    """The owner's queued and running jobs (from the partial index), but
    ``except_job``."""
    query = (
        select(func.count())
        .select_from(Job)
        .where(Job.status.in_(ACTIVE), Job.owner_id == owner_id)
    )
    if except_job is not None:
        query = query.where(Job.id != except_job)
    return int(await session.scalar(query) or 0)


async def check_active_quota(
    session: AsyncSession,
    owner_id: UUID,
    limit: int,
    *,
    except_job: UUID | None = None,
    lock: bool = True,
) -> None:
    """Refuse (429, Retry-After) a new job (``except_job`` when it is
    already inserted) of an owner who already has ``limit`` queued or running
    ones. Under the owner's lock, held until the transaction ends: concurrent
    submits count each other's committed rows, so exactly ``limit`` get in.
    ``lock=False``: a cheap early check, not race-free."""
    if lock:
        await repository.lock_owner(session, owner_id)
    refuse_past_active_quota(await count_active(session, owner_id, except_job=except_job), limit)


def refuse_past_active_quota(active: int, limit: int) -> None:
    """:class:`QuotaExceeded` (429, Retry-After) when an owner who has
    ``active`` queued or running jobs may not add one."""
    if active >= limit:
        raise QuotaExceeded(
            f"too many active jobs: you have {active} queued or running, and the limit is "
            f"{limit} per user (MAX_ACTIVE_JOBS_PER_USER); wait for one to finish, or "
            "cancel one",
            retry_after=QUOTA_RETRY_AFTER_SECONDS,
        )


async def claimed_within(session: AsyncSession, period: timedelta) -> bool:
    """Whether any job was claimed in the last ``period``: the workers are
    taking messages, so a queued job that waits is waiting its turn."""
    recent = exists().where(Job.started_at > func.now() - period)
    return bool(await session.scalar(select(recent)))
