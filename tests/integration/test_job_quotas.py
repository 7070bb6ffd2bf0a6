"""The active-jobs quota (MAX_ACTIVE_JOBS_PER_USER): queued + running jobs
per user, enforced in the one door every job kind goes through
(:func:`core.jobs.service.enqueue`). The test stack raises the quota for the
fault tests, so each test here sets its own limit or reads the configured one."""

from __future__ import annotations

import asyncio
from uuid import UUID

import httpx
import pydantic
import pytest
from celery import Celery
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import transaction
from core.errors import QuotaExceeded
from core.jobs import builtin, runner, service
from core.jobs.scheduling import QUOTA_RETRY_AFTER_SECONDS
from core.jobs_index import job_kinds
from core.models import Job, JobStatus, User
from core.settings import JobSettings, Settings
from tests.integration.conftest import register, token_headers, user_id


def test_the_default_is_20_and_the_setting_is_bounded() -> None:
    assert JobSettings.model_fields["max_active_jobs_per_user"].default == 20
    for bad in (0, -1, 100_001):
        with pytest.raises(pydantic.ValidationError):
            JobSettings(max_active_jobs_per_user=bad)


async def submit(
    sessionmaker: async_sessionmaker[AsyncSession], producer: Celery, owner: User, limit: int
) -> Job:
    async with sessionmaker() as session, transaction(session):
        return await service.enqueue(
            session,
            producer,
            owner_id=owner.id,
            kind=builtin.PING,
            payload={},
            max_active_jobs=limit,
        )


async def test_concurrent_submits_accept_exactly_the_limit(
    committed: tuple[async_sessionmaker[AsyncSession], User], producer: Celery
) -> None:
    """30 submits at once by one user, each in its own transaction on its own
    connection: exactly 20 are accepted, the other 10 refused."""
    maker, owner = committed

    async def attempt() -> bool:
        try:
            await submit(maker, producer, owner, 20)
        except QuotaExceeded:
            return False
        return True

    outcomes = await asyncio.gather(*(attempt() for _ in range(30)))
    assert (outcomes.count(True), outcomes.count(False)) == (20, 10)
    async with maker() as session:
        stored = await session.scalar(
            select(func.count()).select_from(Job).where(Job.owner_id == owner.id)
        )
    assert stored == 20


async def test_finished_and_cancelled_jobs_free_their_place(
    sessionmaker: async_sessionmaker[AsyncSession],
    producer: Celery,
    owner: User,
    job_settings: JobSettings,
) -> None:
    first, second, third = [await submit(sessionmaker, producer, owner, 3) for _ in range(3)]
    with pytest.raises(QuotaExceeded):
        await submit(sessionmaker, producer, owner, 3)

    # A running job still counts.
    async with sessionmaker() as session, transaction(session):
        await session.execute(
            text("UPDATE jobs SET status = 'running' WHERE id = :id"), {"id": first.id}
        )
    with pytest.raises(QuotaExceeded):
        await submit(sessionmaker, producer, owner, 3)

    async with sessionmaker() as session, transaction(session):
        await service.cancel(session, owner.id, first.id)
    fourth = await submit(sessionmaker, producer, owner, 3)

    kinds = job_kinds("production")
    outcome = await runner.run(sessionmaker, second.id, settings=job_settings, kinds=kinds)
    assert outcome == "succeeded"
    await submit(sessionmaker, producer, owner, 3)
    with pytest.raises(QuotaExceeded):
        await submit(sessionmaker, producer, owner, 3)
    async with sessionmaker() as session:
        statuses = {
            job.id: (await service.get(session, owner.id, job.id)).status
            for job in (first, second, third, fourth)
        }
    assert statuses == {
        first.id: JobStatus.cancelled,
        second.id: JobStatus.succeeded,
        third.id: JobStatus.queued,
        fourth.id: JobStatus.queued,
    }


async def fill_quota(session: AsyncSession, owner: UUID, count: int) -> None:
    """Give ``owner`` ``count`` queued jobs in one statement."""
    await session.execute(
        text(
            "INSERT INTO jobs (id, owner_id, kind, status) "
            "SELECT gen_random_uuid(), :owner, 'ping', 'queued' FROM generate_series(1, :n)"
        ),
        {"owner": owner, "n": count},
    )


async def test_past_the_quota_the_api_answers_429_in_the_error_shape(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    user_headers: dict[str, str],
) -> None:
    """With the configured limit used up, every kind of submission answers
    429 ``quota_exceeded`` with Retry-After and a message naming the limit
    and the setting; another user is unaffected."""
    limit = settings.jobs.max_active_jobs_per_user
    async with sessionmaker() as session, transaction(session):
        await fill_quota(session, await user_id(client, user_headers), limit)

    refused = [
        await client.post("/api/v1/jobs/ping", json={}, headers=user_headers),
        await client.post("/api/v1/items/export", headers=user_headers),
        await client.post(
            "/api/v1/items/import",
            files={"file": ("a.csv", b"sku,name,price,quantity\na,A,1,1\n", "text/csv")},
            headers=user_headers,
        ),
    ]
    for response in refused:
        assert response.status_code == 429, response.text
        assert response.headers["retry-after"] == str(QUOTA_RETRY_AFTER_SECONDS)
        error = response.json()["error"]
        assert set(response.json()) == {"error"}
        assert error["code"] == "quota_exceeded"
        assert f"limit is {limit} per user" in error["message"]
        assert "MAX_ACTIVE_JOBS_PER_USER" in error["message"]

    other = await token_headers(client, (await register(client))["email"])
    accepted = await client.post("/api/v1/jobs/ping", json={}, headers=other)
    assert accepted.status_code == 202, accepted.text
