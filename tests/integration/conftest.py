"""Fixtures on the real Postgres and Redis of the compose network.

The schema is built by the real migrations (``python -m migrate``) in a
dedicated database whose name must end in ``_test``; it is dropped and created
anew for every run. Each test runs inside one transaction that is rolled back,
and sessions made for the test join it through savepoints.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from celery import Celery
from fastapi import FastAPI
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from api.main import create_app
from core.db import create_engine, create_sessionmaker, transaction
from core.models import User
from core.queue import create_producer
from core.settings import JobSettings, Settings, get_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    settings = get_settings()
    name = make_url(settings.db.url.url).database or ""
    if not name.endswith("_test"):
        pytest.exit(f"refusing to run against database {name!r}: its name must end in _test")
    return settings


async def recreate_database(settings: Settings, name: str) -> None:
    """Drop and create database ``name`` on the server of DATABASE_URL."""
    url = make_url(settings.db.direct_url.url).set(database="postgres")
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    name = make_url(settings.db.url.url).database or ""
    await recreate_database(settings, name)
    # The real entry point of the migrate service, in its own process.
    await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "migrate"], check=True, timeout=120
    )
    engine = create_engine(settings.db, application_name="tests")
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as connection:
        outer = await connection.begin()
        yield connection
        if outer.is_active:
            await outer.rollback()


@pytest.fixture
def sessionmaker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions whose commits become savepoints of the test's transaction."""
    return async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


@pytest.fixture
async def session(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as session:
        yield session


@pytest.fixture(scope="session")
def producer(settings: Settings) -> Celery:
    return create_producer(settings)


@pytest.fixture
async def app(
    settings: Settings, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        app.state.sessionmaker = sessionmaker
        # Reads too: they must see what the test transaction holds.
        app.state.read_sessionmaker = sessionmaker
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def python_output(code: str, **env: str) -> str:
    """The last line ``code`` prints, run by this interpreter in a process
    of its own with these environment variables added; fails the test
    with its stderr when it fails."""
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", code],
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def with_jobs(settings: Settings, **fields: object) -> Settings:
    """``settings`` with these job settings changed (MAX_ITEMS_PER_USER,
    ITEMS_TOTAL_CAP, ...), for an app made by :func:`serve`."""
    return settings.model_copy(update={"jobs": settings.jobs.model_copy(update=fields)})


@asynccontextmanager
async def serve(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app made from ``settings`` (a variant of the test
    settings). With ``sessionmaker``, its requests run in the test's
    transaction, reads too, so that they see what it holds; without, on the
    app's own engine, committing for real."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        if sessionmaker is not None:
            app.state.sessionmaker = sessionmaker
            app.state.read_sessionmaker = sessionmaker
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture(autouse=True)
async def clean_throttle(settings: Settings) -> AsyncIterator[None]:
    """Login failures counted by one test never throttle the next."""
    from redis.asyncio import Redis

    redis = Redis.from_url(settings.redis.redis_url)
    await redis.flushdb()
    yield
    await redis.aclose()


PASSWORD = "correct horse battery"


async def register(
    client: httpx.AsyncClient, email: str | None = None, password: str = PASSWORD
) -> dict[str, Any]:
    """Register a user (a fresh email unless given) and return its JSON."""
    email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": password}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    """POST the OAuth2 password form."""
    return await client.post("/api/v1/auth/login", data={"username": email, "password": password})


async def token_headers(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> dict[str, str]:
    """Authorization headers for a user."""
    response = await login(client, email, password)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
async def user_headers(client: httpx.AsyncClient) -> dict[str, str]:
    """A fresh user's Authorization headers."""
    user = await register(client)
    return await token_headers(client, user["email"])


@pytest.fixture
def job_settings(settings: Settings) -> JobSettings:
    """Job settings with tiny import batches, so that tests cross batch edges."""
    return settings.jobs.model_copy(update={"import_batch_rows": 3})


@pytest.fixture
async def owner(sessionmaker: async_sessionmaker[AsyncSession]) -> User:
    """A user stored in the test's transaction."""
    async with sessionmaker() as session, transaction(session):
        user = User(email=f"owner-{uuid.uuid4().hex[:12]}@example.com", hashed_password="x")
        session.add(user)
    return user


async def user_id(client: httpx.AsyncClient, headers: dict[str, str]) -> uuid.UUID:
    """The id of the user the headers authenticate."""
    response = await client.get("/api/v1/users/me", headers=headers)
    assert response.status_code == 200, response.text
    return uuid.UUID(response.json()["id"])


@pytest.fixture
async def committed(
    engine: AsyncEngine,
) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], User]]:
    """Sessions on separate pooled connections that really commit (for
    concurrency), and a user whose deletion at the end removes what they made."""
    maker = create_sessionmaker(engine)
    async with maker() as session, transaction(session):
        user = User(email=f"committed-{uuid.uuid4().hex[:12]}@example.com", hashed_password="x")
        session.add(user)
    yield maker, user
    async with maker() as session, transaction(session):
        await session.delete(await session.get(User, user.id))
