"""The request session commits on success and rolls back on error."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.deps import SessionDep
from core.db import after_commit, create_read_sessionmaker, create_sessionmaker, transaction
from core.errors import AppError
from core.models import Job, User


class Conflict(AppError):
    status_code = 409
    code = "conflict"


@pytest.fixture
async def probe_client(app: FastAPI, owner: User) -> AsyncIterator[httpx.AsyncClient]:
    @app.post("/_probe/ok", status_code=201)
    async def ok(session: SessionDep) -> dict[str, str]:
        session.add(Job(owner_id=owner.id, kind="probe-ok", payload={}))
        return {"status": "stored"}

    @app.post("/_probe/fail")
    async def fail(session: SessionDep) -> dict[str, str]:
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
