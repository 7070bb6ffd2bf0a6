"""The request session commits on success and rolls back on error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.deps import WriteSession
from core.db import (
    PING_AFTER_IDLE_SECONDS,
    after_commit,
    create_engine,
    create_read_sessionmaker,
    create_sessionmaker,
    transaction,
)
from core.errors import AppError
from core.models import Job, User
from core.settings import Settings


class Conflict(AppError):
    status_code = 409
    code = "conflict"


@pytest.fixture
async def probe_client(app: FastAPI, owner: User) -> AsyncIterator[httpx.AsyncClient]:
    @app.post("/_probe/ok", status_code=201)
    async def ok(session: WriteSession) -> dict[str, str]:
        session.add(Job(owner_id=owner.id, kind="probe-ok", payload={}))
        return {"status": "stored"}

    @app.post("/_probe/fail")
    async def fail(session: WriteSession) -> dict[str, str]:
        session.add(Job(owner_id=owner.id, kind="probe-fail", payload={}))
        await session.flush()
        raise Conflict("the write must not survive")

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def count(session: AsyncSession, kind: str) -> int:
    return await session.scalar(select(func.count()).where(Job.kind == kind)) or 0


async def test_success_commits(probe_client: httpx.AsyncClient, session: AsyncSession) -> None:
    response = await probe_client.post("/_probe/ok")
    assert response.status_code == 201
    assert await count(session, "probe-ok") == 1


async def test_error_rolls_back(probe_client: httpx.AsyncClient, session: AsyncSession) -> None:
    response = await probe_client.post("/_probe/fail")
    assert response.status_code == 409
    assert response.json()["error"] == {"code": "conflict", "message": "the write must not survive"}
    assert await count(session, "probe-fail") == 0


async def test_after_commit_runs_only_after_a_commit(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    calls: list[str] = []

    async def record() -> None:
        calls.append("sent")

    async with sessionmaker() as session, transaction(session):
        after_commit(session, record)
        assert calls == []
    assert calls == ["sent"]

    async def failing_transaction() -> None:
        async with sessionmaker() as session, transaction(session):
            after_commit(session, record)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await failing_transaction()
    assert calls == ["sent"]


async def test_reads_run_in_autocommit_without_a_transaction_block(engine: AsyncEngine) -> None:
    """GET requests use these sessions: each statement is its own transaction
    (no BEGIN / COMMIT round trips), where a write session keeps one."""
    query = text("SELECT xact_start FROM pg_stat_activity WHERE pid = pg_backend_pid()")

    async def transaction_starts(maker: async_sessionmaker[AsyncSession]) -> set[object]:
        async with maker() as session:
            first = await session.scalar(query)
            await session.execute(text("SELECT pg_sleep(0.01)"))
            second = await session.scalar(query)
        return {first, second}

    assert len(await transaction_starts(create_read_sessionmaker(engine))) == 2
    assert len(await transaction_starts(create_sessionmaker(engine))) == 1


async def test_a_connection_that_died_while_idle_is_replaced_unseen(settings: Settings) -> None:
    """Postgres restarted (here: the backend terminated) while the connection
    sat in the pool: the checkout ping finds it dead and the pool opens a new
    one, so the request never sees the failure."""
    if settings.db.pooled:
        pytest.skip("behind a transaction pooler the engine keeps no connections to ping")
    one = settings.db.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0})
    engine = create_engine(one, application_name="tests")
    try:
        async with engine.connect() as connection:
            first = await connection.scalar(text("SELECT pg_backend_pid()"))
        admin = create_engine(settings.db, application_name="tests-admin")
        async with admin.connect() as connection:
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        await admin.dispose()
        await asyncio.sleep(PING_AFTER_IDLE_SECONDS + 0.2)
        async with engine.connect() as connection:
            second = await connection.scalar(text("SELECT pg_backend_pid()"))
        assert second != first
    finally:
        await engine.dispose()
