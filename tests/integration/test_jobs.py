"""Jobs through the API and the domain service, on the real database."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import httpx
import pytest
from celery import Celery
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.db import create_sessionmaker, transaction
from core.errors import NotFound
from core.jobs import repository, service
from core.models import Job, JobStatus
from tests.integration.conftest import register, token_headers


async def test_create_ping_job(
    client: httpx.AsyncClient, session: AsyncSession, user_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/v1/jobs/ping", json={"message": "hello"}, headers=user_headers
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued"
    assert body["kind"] == "ping"
    assert response.headers["location"].endswith(f"/api/v1/jobs/{body['id']}")
    job = await session.get(Job, UUID(body["id"]))
    assert job is not None
    assert job.payload == {"message": "hello"}

    fetched = await client.get(f"/api/v1/jobs/{body['id']}", headers=user_headers)
    assert fetched.status_code == 200
    assert fetched.json()["id"] == body["id"]

    someone_else = await token_headers(client, (await register(client))["email"])
    hidden = await client.get(f"/api/v1/jobs/{body['id']}", headers=someone_else)
    assert hidden.status_code == 404


async def test_unknown_job_is_404_in_the_error_shape(
    client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    response = await client.get(f"/api/v1/jobs/{uuid4()}", headers=user_headers)
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "job not found"}}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/jobs/not-a-uuid", None),
        ("/api/v1/jobs/ping", {"message": "x" * 201}),
        ("/api/v1/jobs/ping", {"unexpected": 1}),
    ],
)
async def test_bad_input_is_422(
    client: httpx.AsyncClient,
    user_headers: dict[str, str],
    path: str,
    body: dict[str, object] | None,
) -> None:
    response = (
        await client.get(path, headers=user_headers)
        if body is None
        else await client.post(path, json=body, headers=user_headers)
    )
    assert response.status_code == 422


async def test_run_claims_once_and_records_the_result(
    sessionmaker: async_sessionmaker[AsyncSession], producer: Celery
) -> None:
    async with sessionmaker() as session, transaction(session):
        job = await repository.create(session, kind="ping", payload={"message": "hi"})

    assert await service.run(sessionmaker, job.id) == "succeeded"
    # A duplicate message (redelivery) is a no-op.
    assert await service.run(sessionmaker, job.id) == "skipped"

    async with sessionmaker() as session:
        stored = await service.get(session, job.id)
        assert stored.status is JobStatus.succeeded
        assert stored.attempts == 1
        assert stored.progress == 100
        assert stored.result is not None
        assert stored.result["pong"] == "hi"
        assert stored.finished_at is not None


async def test_concurrent_claims_run_a_job_once(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, transaction(session):
        job = await repository.create(session, kind="ping", payload={})
    # Sessions share the test's connection, so the claims are serialised by
    # the driver; what matters is that exactly one of them wins.
    outcomes = [await service.run(sessionmaker, job.id) for _ in range(5)]
    assert outcomes.count("succeeded") == 1
    assert outcomes.count("skipped") == 4


async def test_missing_job_is_skipped(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    assert await service.run(sessionmaker, uuid4()) == "skipped"


async def test_a_failing_handler_marks_the_job_failed(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, transaction(session):
        job = await repository.create(session, kind="ping", payload={})
        job.kind = "no-such-kind"
    assert await service.run(sessionmaker, job.id) == "failed"
    async with sessionmaker() as session:
        stored = await service.get(session, job.id)
        assert stored.status is JobStatus.failed
        assert stored.error == "LookupError: no handler for job kind 'no-such-kind'"


async def test_get_missing_raises_not_found(session: AsyncSession) -> None:
    with pytest.raises(NotFound):
        await service.get(session, uuid4())


async def test_enqueue_refuses_unknown_kinds(session: AsyncSession, producer: Celery) -> None:
    with pytest.raises(ValueError, match="unknown job kind"):
        await service.enqueue(session, producer, kind="nope", payload={})


async def test_claims_from_separate_connections_race_safely(engine: AsyncEngine) -> None:
    """Real concurrency: five connections claim the same committed job."""
    maker = create_sessionmaker(engine)
    async with maker() as session, transaction(session):
        job = await repository.create(session, kind="ping", payload={})
    try:
        outcomes = await asyncio.gather(*(service.run(maker, job.id) for _ in range(5)))
        assert sorted(outcomes) == ["skipped"] * 4 + ["succeeded"]
    finally:
        async with maker() as session, transaction(session):
            await session.delete(await session.get(Job, job.id))
