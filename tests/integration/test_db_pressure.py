"""Database pressure answers cleanly (issue 13, point 8): an exhausted pool
and a statement past its time limit are a 503 with Retry-After in the one
error shape, a job past its limit fails with a clear error and is not
retried, and a request cancelled mid-query gives its connection back.

`make test` runs these twice: straight to Postgres, and through PgBouncer in
transaction mode, where the engine keeps no pool and sets the limit per
transaction (core.db._limit_statements)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import QueuePool

from api.deps import ReadSession, WriteSession
from api.main import create_app
from core.db import create_engine, create_sessionmaker, transaction
from core.jobs import repository, runner
from core.jobs.context import JobContext, Output
from core.jobs.kinds import Handler, JobKind
from core.models import Job, JobStatus, User
from core.settings import JobSettings, Settings
from tests.integration.conftest import python_output, register, token_headers


def with_db(settings: Settings, **changes: object) -> Settings:
    """``settings`` with some database settings changed."""
    return settings.model_copy(update={"db": settings.db.model_copy(update=changes)})


@asynccontextmanager
async def own_app(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app on its own engine (committing for real), with probe routes
    that hold a database connection for ``seconds`` in a read (autocommit)
    or a write (transaction) session. ``tag`` marks the statement, so the
    test can find it in pg_stat_activity."""
    app = create_app(settings)

    @app.get("/_probe/read")
    async def read(session: ReadSession, seconds: float = 0.0, tag: str = "") -> dict[str, str]:
        await session.execute(text(f"SELECT pg_sleep(:s) /* {tag} */"), {"s": seconds})
        return {"status": "done"}

    @app.post("/_probe/write")
    async def write(session: WriteSession, seconds: float = 0.0, tag: str = "") -> dict[str, str]:
        await session.execute(text(f"SELECT pg_sleep(:s) /* {tag} */"), {"s": seconds})
        return {"status": "done"}

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield app, client


def assert_unavailable(response: httpx.Response) -> None:
    """A 503 in the one error shape, with Retry-After."""
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "service_unavailable"
    assert int(response.headers["Retry-After"]) > 0


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Overload is logged at warning, never as an error with a traceback."""
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_an_exhausted_pool_answers_503_not_500(
    settings: Settings, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """A pool of one, held busy: 60 concurrent list requests all wait
    DB_POOL_TIMEOUT and answer 503; then 60 more share the one connection,
    and each answers 200 or 503, never a plain-text 500 (it was 237 of 300)."""
    if settings.db.pooled:
        pytest.skip("behind a transaction pooler the engine keeps no pool; the pooler queues")
    small = with_db(settings, db_pool_size=1, db_max_overflow=0, db_pool_timeout=0.2)
    async with own_app(small) as (app, client):
        user = await register(client)
        headers = await token_headers(client, user["email"])
        # The caller is now in this process's principal cache: the list
        # requests below need the pool for their own queries only.
        assert (await client.get("/api/v1/items", headers=headers)).status_code == 200
        app_engine: AsyncEngine = app.state.engine

        with caplog.at_level(logging.WARNING):
            async with app_engine.connect() as held:
                await held.execute(text("SELECT 1"))
                blocked = await asyncio.gather(
                    *(client.get("/api/v1/items", headers=headers) for _ in range(60))
                )
            shared = await asyncio.gather(
                *(client.get("/api/v1/items", headers=headers) for _ in range(60))
            )

        for response in blocked:
            assert_unavailable(response)
        for response in shared:
            assert response.status_code in (200, 503), response.text
            if response.status_code == 503:
                assert_unavailable(response)
        assert isinstance(app_engine.pool, QueuePool)
        assert app_engine.pool.checkedout() == 0
    assert any("database pool exhausted" in r.getMessage() for r in caplog.records)
    no_errors_logged(caplog)
    await delete_user(engine, uuid.UUID(user["id"]))


async def delete_user(engine: AsyncEngine, user_id: uuid.UUID) -> None:
    async with create_sessionmaker(engine)() as session, transaction(session):
        await session.delete(await session.get(User, user_id))


@pytest.mark.parametrize("route", ["write", "read"])
async def test_a_statement_past_the_timeout_answers_503(
    settings: Settings, route: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Postgres cancels the statement after DB_STATEMENT_TIMEOUT_SECONDS
    (SQLSTATE 57014): a 503 the client may retry, and the connection serves
    the next request."""
    if route == "read" and settings.db.pooled:
        pytest.skip("through a transaction pooler autocommit reads get the role's default limit")
    tiny = with_db(settings, db_statement_timeout_seconds=0.05)
    async with own_app(tiny) as (_, client):
        method = "POST" if route == "write" else "GET"
        with caplog.at_level(logging.WARNING):
            slow = await client.request(method, f"/_probe/{route}", params={"seconds": 3})
        assert_unavailable(slow)
        fast = await client.request(method, f"/_probe/{route}", params={"seconds": 0})
        assert fast.status_code == 200, fast.text
    assert any("statement cancelled" in r.getMessage() for r in caplog.records)
    no_errors_logged(caplog)


async def show_timeout(engine: AsyncEngine, *, autocommit: bool = False) -> str:
    """statement_timeout as a statement of ``engine`` sees it."""
    maker = create_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT") if autocommit else engine
    )
    async with maker() as session:
        return str(await session.scalar(text("SHOW statement_timeout")))


async def test_every_engine_has_its_statement_timeout(settings: Settings) -> None:
    """The api's limit by default, the one given, and none for the direct
    engine of migrations (a long migration is never cancelled)."""
    api = create_engine(
        with_db(settings, db_statement_timeout_seconds=12.5).db, application_name="tests"
    )
    job = create_engine(settings.db, application_name="tests", statement_timeout=600)
    migrations = create_engine(settings.db, application_name="tests", direct=True)
    try:
        assert await show_timeout(api) == "12500ms"
        assert await show_timeout(job) == "10min"
        assert await show_timeout(migrations) == "0"
        if not settings.db.pooled:
            # Autocommit statements too (through a pooler: the role's default).
            assert await show_timeout(api, autocommit=True) == "12500ms"
    finally:
        for engine in (api, job, migrations):
            await engine.dispose()


async def test_the_worker_runs_jobs_under_the_job_statement_timeout() -> None:
    """worker.runner builds its engine with JOB_STATEMENT_TIMEOUT_SECONDS (in
    a process of its own, as a Celery child would)."""
    code = (
        "from sqlalchemy import text\n"
        "from worker.runner import run, stop\n"
        "async def show(maker):\n"
        "    async with maker() as session:\n"
        "        return await session.scalar(text('SHOW statement_timeout'))\n"
        "print(run(show))\n"
        "stop()\n"
    )
    assert await python_output(code, JOB_STATEMENT_TIMEOUT_SECONDS="321") == "321s"


async def sleep_through_sqlalchemy(session: AsyncSession, ctx: JobContext) -> Output:
    await session.execute(text("SELECT pg_sleep(5)"))
    return Output()


async def sleep_through_the_driver(session: AsyncSession, ctx: JobContext) -> Output:
    # The way COPY runs: on asyncpg itself, in the run's transaction.
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    await driver.execute("SELECT pg_sleep(5)")
    return Output()


@pytest.mark.parametrize("handler", [sleep_through_sqlalchemy, sleep_through_the_driver])
async def test_a_job_past_the_job_statement_timeout_fails_and_is_not_retried(
    settings: Settings,
    committed: tuple[async_sessionmaker[AsyncSession], User],
    job_settings: JobSettings,
    handler: Handler,
) -> None:
    _, owner = committed
    limit = 0.2
    engine = create_engine(settings.db, application_name="tests", statement_timeout=limit)
    maker = create_sessionmaker(engine)
    jobs = job_settings.model_copy(update={"job_statement_timeout_seconds": limit})
    kinds = {"ping": JobKind("ping", handler)}
    try:
        async with maker() as session, transaction(session):
            job = await repository.create(session, owner_id=owner.id, kind="ping", payload={})
        assert await runner.run(maker, job.id, settings=jobs, kinds=kinds) == "failed"
        # Failed for good, not back in the queue: a second delivery skips it.
        assert await runner.run(maker, job.id, settings=jobs, kinds=kinds) == "skipped"
        async with maker() as session:
            stored = await session.get(Job, job.id)
        assert stored is not None
        assert stored.status is JobStatus.failed
        assert stored.attempts == 1
        assert stored.error == (
            "a statement ran longer than JOB_STATEMENT_TIMEOUT_SECONDS (0.2 s) and was "
            "cancelled (or an operator cancelled it); not retried, as it would run as long again"
        )
    finally:
        await engine.dispose()


def count_checkouts(engine: AsyncEngine) -> Callable[[], int]:
    """Connections of ``engine`` checked out now, whatever its pool (with a
    pooler the engine's NullPool has no checkedout())."""
    out = 0

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _out(*_: object) -> None:
        nonlocal out
        out += 1

    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _in(*_: object) -> None:
        nonlocal out
        out -= 1

    return lambda: out


async def eventually(check: Callable[[], object], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


async def test_a_client_that_disconnects_mid_query_gives_its_connection_back(
    settings: Settings, engine: AsyncEngine
) -> None:
    """Requests cancelled while their route awaits the database (a client
    gone mid-flight) return their connections, the server stops their
    statements, and the pool serves the next request."""
    tag = f"disconnect_{uuid.uuid4().hex}"

    async def running_on_server() -> int:
        async with engine.connect() as connection:
            query = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE :q"
            return int(await connection.scalar(text(query), {"q": f"%{tag}%"}) or 0)

    async with own_app(with_db(settings, db_pool_size=4, db_max_overflow=0)) as (app, client):
        app_engine: AsyncEngine = app.state.engine
        checked_out = count_checkouts(app_engine)
        params: dict[str, str | int] = {"seconds": 30, "tag": tag}
        requests = [
            asyncio.create_task(client.get("/_probe/read", params=params)),
            asyncio.create_task(client.get("/_probe/read", params=params)),
            asyncio.create_task(client.post("/_probe/write", params=params)),
            asyncio.create_task(client.post("/_probe/write", params=params)),
        ]
        await eventually(lambda: checked_out() == 4)
        for _ in range(250):  # every statement has reached the server
            if await running_on_server() == 4:
                break
            await asyncio.sleep(0.02)
        assert await running_on_server() == 4

        for request in requests:
            request.cancel()
        results = await asyncio.gather(*requests, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results), results

        await eventually(lambda: checked_out() == 0)
        if isinstance(app_engine.pool, QueuePool):
            assert app_engine.pool.checkedout() == 0
        for _ in range(250):
            if await running_on_server() == 0:
                break
            await asyncio.sleep(0.02)
        assert await running_on_server() == 0
        fast = await client.get("/_probe/read", params={"seconds": 0})
        assert fast.status_code == 200, fast.text
