"""The relay: recovers jobs whose message was lost or whose worker died
(see README, Jobs: delivery). The scheduler sends it every
RELAY_INTERVAL_SECONDS."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import transaction
from core.jobs import files, metrics, repository, scheduling
from core.queue import Producer, send_job
from core.settings import JobSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RelayReport:
    """What one relay pass did."""

    failed: Sequence[UUID]
    requeued: Sequence[UUID]
    resent: Sequence[UUID]
    sent: int


async def relay(
    sessionmaker: async_sessionmaker[AsyncSession],
    producer: Producer,
    settings: JobSettings,
    *,
    limit: int = 1000,
) -> RelayReport:
    """Recover jobs: fail those out of attempts whose worker died, take back
    the other abandoned ones, and, when no job was claimed for
    JOB_RESEND_AFTER_SECONDS, re-send queued jobs whose message is that old.
    Safe to run concurrently (row locks are skipped, updates are conditional)."""
    stale_after = timedelta(seconds=settings.job_stale_after_seconds)
    async with sessionmaker() as session, transaction(session):
        abandoned = await repository.fail_abandoned(
            session, stale_after=stale_after, max_attempts=settings.max_job_attempts
        )
        await files.delete_inputs(session, [job_id for job_id, _ in abandoned])
        requeued = await repository.requeue_abandoned(
            session, stale_after=stale_after, max_attempts=settings.max_job_attempts
        )
        resend_after = timedelta(seconds=settings.job_resend_after_seconds)
        # A message only wakes a worker, which claims the fairest job: while
        # jobs are being claimed, a job that waits longer than resend_after
        # is waiting its turn behind a backlog, and re-sending it would only
        # pile duplicates on the broker. A message is missing only when
        # queued jobs wait and no claim happened for that long.
        resent: Sequence[UUID] = []
        if not await scheduling.claimed_within(session, resend_after):
            resent = await repository.resend_due(session, older_than=resend_after, limit=limit)
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
        metrics.OLDEST_QUEUED_AGE.set(await repository.oldest_queued_age(session))
    metrics.RELAY_LAST_RUN.set_to_current_time()
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
