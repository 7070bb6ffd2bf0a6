"""The metrics the alert rules and dashboards of deploy/monitoring read:
the database pool's, the relay's, the scheduler lease's and readiness's."""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import AsyncExitStack

import httpx
import pytest
from celery import Celery
from redis import Redis
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from core.db import create_engine, transaction
from core.db_metrics import MeteredPool
from core.jobs import relay, repository
from core.metrics import scrape_registry
from core.models import User
from core.settings import JobSettings, Settings
from worker.metrics import SchedulerCollector


def sample(name: str, **labels: str) -> float | None:
    return scrape_registry().get_sample_value(name, labels)


def pool_state(label: str) -> tuple[float | None, float | None]:
    return (
        sample("appstack_db_pool_checked_out", pool=label),
        sample("appstack_db_pool_overflow", pool=label),
    )


async def test_pool_metrics_follow_checkouts_overflow_waits_and_timeouts(
    settings: Settings, engine: AsyncEngine
) -> None:
    label = f"pool-{uuid.uuid4().hex[:8]}"
    # A pool of its own, straight to Postgres (also in the PgBouncer pass,
    # where the app's engines keep no pool).
    db = settings.db.model_copy(
        update={
            "database_url": settings.db.database_direct_url or settings.db.database_url,
            "database_direct_url": None,
            "db_pooler": "none",
            "db_pool_size": 2,
            "db_max_overflow": 1,
            "db_pool_timeout": 0.5,
        }
    )
    # (``engine``: the test database exists and is migrated.)
    metered = create_engine(db, application_name=label)
    assert isinstance(metered.pool, MeteredPool)
    assert sample("appstack_db_pool_size", pool=label) == 2
    assert sample("appstack_db_pool_max_overflow", pool=label) == 1
    assert sample("appstack_db_pool_timeouts_total", pool=label) == 0
    assert pool_state(label) == (0, 0)
    try:
        async with AsyncExitStack() as held:
            connections: list[AsyncConnection] = []
            for expected in ((1, 0), (2, 0), (3, 1)):
                connections.append(await held.enter_async_context(metered.connect()))
                await connections[-1].execute(text("SELECT 1"))
                assert pool_state(label) == expected
            # Pool and overflow in use: the next caller waits, then gives up.
            with pytest.raises(PoolTimeout):
                await held.enter_async_context(metered.connect())
            assert sample("appstack_db_pool_timeouts_total", pool=label) == 1
            assert sample("appstack_db_pool_wait_seconds_count", pool=label) == 4
            # It waited DB_POOL_TIMEOUT at least.
            waited = sample("appstack_db_pool_wait_seconds_sum", pool=label) or 0
            assert waited >= 0.5
        # All returned; the overflow connection is closed.
        assert pool_state(label) == (0, 0)
        # dispose() replaces the pool: the new one reports under the same label.
        await metered.dispose()
        async with metered.connect() as connection:
            await connection.execute(text("SELECT 1"))
            assert pool_state(label) == (1, 0)
        assert pool_state(label) == (0, 0)
    finally:
        await metered.dispose()


async def test_a_relay_pass_records_its_time_and_the_oldest_waiting_job(
    sessionmaker: async_sessionmaker[AsyncSession],
    producer: Celery,
    owner: User,
    job_settings: JobSettings,
) -> None:
    async with sessionmaker() as session, transaction(session):
        job = await repository.create(session, owner_id=owner.id, kind="ping", payload={})
        await session.execute(
            text("UPDATE jobs SET created_at = now() - interval '10 minutes' WHERE id = :id"),
            {"id": job.id},
        )
    before = time.time()
    await relay.relay(sessionmaker, producer, job_settings)
    last_run = sample("appstack_jobs_relay_last_run_timestamp_seconds")
    assert last_run is not None
    assert last_run >= before - 1
    assert (sample("appstack_jobs_oldest_queued_age_seconds") or 0) >= 600
    assert (sample("appstack_jobs_queued") or 0) >= 1


def leader_value(collector: SchedulerCollector) -> list[float]:
    return [s.value for family in collector.collect() for s in family.samples]


async def test_the_scheduler_lease_is_reported_from_redis(settings: Settings) -> None:
    key = f"test:scheduler-leader:{uuid.uuid4().hex}"
    collector = SchedulerCollector(settings.redis.redis_url, key=key)
    redis = Redis.from_url(settings.redis.redis_url)
    try:
        assert await asyncio.to_thread(leader_value, collector) == [0.0]
        redis.set(key, "scheduler-host:1:abcd", px=10_000)
        assert await asyncio.to_thread(leader_value, collector) == [1.0]
    finally:
        redis.delete(key)
        redis.close()
    # Redis away: no value rather than a false "no leader".
    unreachable = SchedulerCollector("redis://127.0.0.1:1/0", key=key)
    assert await asyncio.to_thread(leader_value, unreachable) == []


async def test_readiness_checks_are_exported(client: httpx.AsyncClient) -> None:
    ready = await client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    for check in ("database", "redis", "migrations"):
        assert sample("appstack_readiness_check", check=check) == 1
