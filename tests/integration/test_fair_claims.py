"""Fair claims on the real database: the order in which queued jobs are
claimed, concurrent claims that never take one job twice, and a relay that
re-sends only when no job is being claimed (see README, Jobs: delivery)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from celery import Celery
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.db import create_sessionmaker, transaction
from core.jobs import relay, repository, scheduling
from core.models import Job, JobStatus, User
from core.settings import JobSettings

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


async def hide_other_jobs(session: AsyncSession) -> None:
    """Take every job already in the database out of this test's sight (the
    test's transaction is rolled back, so they come back unchanged)."""
    await session.execute(
        text("UPDATE jobs SET status = 'cancelled', started_at = NULL WHERE status <> 'cancelled'")
    )


async def add_user(session: AsyncSession) -> User:
    user = User(email=f"fair-{uuid.uuid4().hex[:12]}@example.com", hashed_password="x")
    session.add(user)
    await session.flush()
    return user


async def add_job(
    session: AsyncSession,
    owner: User,
    minute: int,
    status: JobStatus = JobStatus.queued,
    started: int | None = None,
) -> UUID:
    """A job of ``owner`` created ``minute`` minutes after EPOCH (every row of
    one transaction would otherwise share its timestamp), and started
    ``started`` minutes after it."""
    job = await repository.create(session, owner_id=owner.id, kind="ping", payload={})
    await session.execute(
        text(
            "UPDATE jobs SET created_at = :at, status = :status, started_at = :started "
            "WHERE id = :id"
        ),
        {
            "at": EPOCH + timedelta(minutes=minute),
            "status": status.value,
            "started": None if started is None else EPOCH + timedelta(minutes=started),
            "id": job.id,
        },
    )
    return job.id


async def test_claims_go_to_the_fewest_running_then_the_least_recently_served(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, transaction(session):
        await hide_other_jobs(session)
        a, b, c, d = [await add_user(session) for _ in range(4)]
        a1, a2, a3 = [await add_job(session, a, m) for m in (1, 2, 3)]
        await add_job(session, a, 0, JobStatus.running, started=10)
        b4, b5 = [await add_job(session, b, m) for m in (4, 5)]
        await add_job(session, b, 0, JobStatus.succeeded, started=20)
        c0 = await add_job(session, c, 0)
        for _ in range(2):
            await add_job(session, c, 0, JobStatus.running)
        d6 = await add_job(session, d, 6)

    claimed = []
    while True:
        async with sessionmaker() as session, transaction(session):
            job = await scheduling.claim_fairest(session)
        if job is None:
            break
        assert (job.status, job.attempts) == (JobStatus.running, 1)
        claimed.append(job.id)
    # Running at first: a 1, b 0, c 2, d 0. b and d tie; d was never served:
    # d6. Then b, the only one with none running: b4. a and b have one each;
    # a was served longer ago (minute 10; b just now): a1. a 2, b 1: b5. a
    # and c have two each; c's last claim is unknown (none recorded): c0.
    # Then a's own, oldest first.
    assert claimed == [d6, b4, a1, b5, c0, a2, a3]


async def test_equal_owners_take_turns(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """With nothing running, a's backlog and b's later jobs alternate,
    although all of a's were queued first: a tie is not first come, first
    served."""
    async with sessionmaker() as session, transaction(session):
        await hide_other_jobs(session)
        a, b = await add_user(session), await add_user(session)
        backlog = [await add_job(session, a, m) for m in range(4)]
        late = [await add_job(session, b, 10 + m) for m in range(2)]
    owners = []
    for _ in range(6):
        async with sessionmaker() as session, transaction(session):
            job = await scheduling.claim_fairest(session)
            assert job is not None
            # Done at once, as short jobs are: nobody has one running.
            await session.execute(
                text("UPDATE jobs SET status = 'succeeded' WHERE id = :id"), {"id": job.id}
            )
        owners.append("a" if job.id in backlog else "b" if job.id in late else "?")
    assert owners == ["a", "b", "a", "b", "a", "a"]


async def test_a_locked_fairest_job_is_skipped_not_waited_for(
    committed: tuple[async_sessionmaker[AsyncSession], User],
) -> None:
    """While one claim holds the fairest job (its transaction still open),
    another claim takes the next job at once: a message never finds nothing
    while an unlocked job waits."""
    maker, owner = committed
    async with maker() as session, transaction(session):
        first = await add_job(session, owner, 1)
        second = await add_job(session, owner, 2)
    async with maker() as holder, transaction(holder):
        held = await scheduling.claim_fairest(holder)
        assert held is not None
        assert held.id == first
        async with maker() as other, transaction(other):
            taken = await asyncio.wait_for(scheduling.claim_fairest(other), timeout=5)
        assert taken is not None
        assert taken.id == second


@pytest.fixture
async def owners(engine: AsyncEngine) -> AsyncIterator[Sequence[User]]:
    """Four users whose rows really commit; deleted (with their jobs) after."""
    maker = create_sessionmaker(engine)
    async with maker() as session, transaction(session):
        users = [await add_user(session) for _ in range(4)]
    yield users
    async with maker() as session, transaction(session):
        for user in users:
            await session.delete(await session.get(User, user.id))


async def test_concurrent_claims_never_take_a_job_twice(
    engine: AsyncEngine, owners: Sequence[User]
) -> None:
    """Twelve claimers on separate connections, each holding its claim open
    for a moment, drain 60 jobs of four owners: every job is claimed exactly
    once, and a claimer finds nothing only once the queue is empty."""
    maker = create_sessionmaker(engine)
    async with maker() as session, transaction(session):
        mine = {await add_job(session, owner, n) for n in range(15) for owner in owners}

    claims: list[UUID] = []

    async def claimer() -> None:
        while True:
            async with maker() as session, transaction(session):
                job = await scheduling.claim_fairest(session)
                await asyncio.sleep(0.01)  # hold the row lock while others claim
            if job is None:
                return
            claims.append(job.id)

    await asyncio.gather(*(claimer() for _ in range(12)))
    assert len(claims) == len(set(claims)), "a job was claimed twice"
    assert mine <= set(claims)
    async with maker() as session:
        attempts = await session.scalars(select(Job.attempts).where(Job.id.in_(mine)))
        assert set(attempts) == {1}


async def test_active_jobs_are_counted_per_owner(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, transaction(session):
        a, b = await add_user(session), await add_user(session)
        for status in (JobStatus.queued, JobStatus.running, JobStatus.succeeded):
            await add_job(session, a, 1, status)
        await add_job(session, b, 1)
    async with sessionmaker() as session:
        assert await scheduling.count_active(session, a.id) == 2
        assert await scheduling.count_active(session, b.id) == 1


async def test_the_relay_resends_only_when_no_job_is_being_claimed(
    sessionmaker: async_sessionmaker[AsyncSession],
    producer: Celery,
    job_settings: JobSettings,
) -> None:
    """A backlog that waits its turn longer than JOB_RESEND_AFTER_SECONDS is
    not re-sent while jobs are claimed; once no claim happened for that long,
    the overdue jobs are re-sent (their message was lost)."""
    settings = job_settings.model_copy(update={"job_resend_after_seconds": 30})
    async with sessionmaker() as session, transaction(session):
        await hide_other_jobs(session)
        owner = await add_user(session)
        backlog = [await add_job(session, owner, n) for n in range(3)]
        await session.execute(
            text("UPDATE jobs SET enqueued_at = now() - interval '5 minutes' WHERE id = ANY(:ids)"),
            {"ids": backlog},
        )
        just_claimed = await add_job(session, owner, 9, JobStatus.running)
        await session.execute(
            text("UPDATE jobs SET started_at = now() - interval '2 seconds' WHERE id = :id"),
            {"id": just_claimed},
        )

    busy = await relay.relay(sessionmaker, producer, settings)
    assert list(busy.resent) == []

    async with sessionmaker() as session, transaction(session):
        await session.execute(
            text("UPDATE jobs SET started_at = now() - interval '31 seconds' WHERE id = :id"),
            {"id": just_claimed},
        )
    idle = await relay.relay(sessionmaker, producer, settings)
    assert sorted(idle.resent) == sorted(backlog)
    assert idle.sent == 3
    async with sessionmaker() as session:
        fresh = await session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.id.in_(backlog), Job.enqueued_at > func.now() - timedelta(seconds=1))
        )
    assert fresh == 3
