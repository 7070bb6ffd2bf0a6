"""Jobs through the API, the domain service and the relay, on the real database
and the real broker (messages go to Redis db 1, which no worker consumes)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from uuid import UUID, uuid4

import httpx
import pytest
from celery import Celery
from fastapi import FastAPI, Request, Response
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.schemas.jobs import GET_JOB_ROUTE, accepted
from core.db import create_sessionmaker, transaction
from core.errors import Conflict, NotFound
from core.jobs import builtin, relay, repository, runner, service
from core.jobs.context import JobContext, Output, ResultFile
from core.jobs.kinds import JobKind
from core.jobs_index import job_kinds
from core.models import Item, Job, JobStatus, User
from core.settings import JobSettings, Settings
from tests.integration.conftest import register, serve, token_headers

# What a production worker runs.
KINDS = job_kinds("production")


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
    assert body["counts"] == {}
    assert response.headers["location"].endswith(f"/api/v1/jobs/{body['id']}")
    job = await session.get(Job, UUID(body["id"]))
    assert job is not None
    assert job.payload == {"message": "hello"}

    fetched = await client.get(f"/api/v1/jobs/{body['id']}", headers=user_headers)
    assert fetched.status_code == 200
    assert fetched.json()["id"] == body["id"]

    someone_else = await token_headers(client, (await register(client))["email"])
    for method, path in [
        ("GET", ""),
        ("GET", "/result"),
        ("POST", "/cancel"),
    ]:
        hidden = await client.request(
            method, f"/api/v1/jobs/{body['id']}{path}", headers=someone_else
        )
        assert hidden.status_code == 404, (method, path)


async def test_ping_result_after_the_run(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_headers: dict[str, str],
    job_settings: JobSettings,
) -> None:
    created = await client.post("/api/v1/jobs/ping", json={"message": "hi"}, headers=user_headers)
    job_id = created.json()["id"]
    early = await client.get(f"/api/v1/jobs/{job_id}/result", headers=user_headers)
    assert early.status_code == 409
    assert "queued" in early.json()["error"]["message"]

    assert (
        await runner.run(sessionmaker, UUID(job_id), settings=job_settings, kinds=KINDS)
        == "succeeded"
    )
    result = await client.get(f"/api/v1/jobs/{job_id}/result", headers=user_headers)
    assert result.status_code == 200
    assert result.json()["pong"] == "hi"
    job = (await client.get(f"/api/v1/jobs/{job_id}", headers=user_headers)).json()
    assert job["status"] == "succeeded"
    assert job["progress"] == 100
    assert job["attempts"] == 1
    assert job["finished_at"] is not None


@pytest.mark.parametrize(
    ("scheme", "host", "root_path"),
    [("http", "test", ""), ("https", "api.example.com", ""), ("https", "example.com", "/svc")],
)
def test_the_location_of_a_202_is_what_url_for_gives(
    app: FastAPI, scheme: str, host: str, root_path: str
) -> None:
    """The job URL of a 202's Location, from the path create_app looked up, is the one
    ``request.url_for`` builds, whatever the host, scheme and root path."""
    scope = {
        "type": "http",
        "scheme": scheme,
        "server": (host, 443 if scheme == "https" else 80),
        "headers": [(b"host", host.encode())],
        "root_path": root_path,
        "path": f"{root_path}/api/v1/jobs/ping",
        "query_string": b"",
        "app": app,
        "router": app.router,
    }
    job = Job(id=uuid4(), kind="ping", status=JobStatus.queued, progress=0, attempts=0)
    job.counts, job.created_at = {}, datetime.now(UTC)
    request, response = Request(scope), Response()
    accepted(job, request, response)
    expected = str(request.url_for(GET_JOB_ROUTE, job_id=job.id))
    assert response.headers["location"] == expected
    assert expected.endswith(f"{root_path}/api/v1/jobs/{job.id}")


async def test_the_job_read_answers_what_the_submit_answered(settings: Settings) -> None:
    """GET /jobs/{id} reads in Core on the app's own engine and serialises
    once: the same bytes and headers FastAPI wrote for the 202 (no worker
    runs here, so the job is still queued); another user's job and an
    unknown one are the same 404."""
    async with serve(settings) as client:
        owner = await token_headers(client, (await register(client))["email"])
        other = await token_headers(client, (await register(client))["email"])
        submitted = await client.post("/api/v1/jobs/ping", json={"message": "x"}, headers=owner)
        assert submitted.status_code == 202, submitted.text
        url = submitted.headers["location"]
        read = await client.get(url, headers=owner)
        missing = [
            await client.get(url, headers=other),
            await client.get(f"/api/v1/jobs/{uuid4()}", headers=owner),
        ]
    assert read.status_code == 200
    assert read.content == submitted.content
    for name in ("content-type", "content-length"):
        assert read.headers[name] == submitted.headers[name]
    for response in missing:
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "not_found", "message": "job not found"}}


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
        ("/api/v1/jobs?status=sleeping", None),
        ("/api/v1/jobs?limit=0", None),
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


async def test_list_own_jobs_filtered_and_paginated(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_headers: dict[str, str],
    job_settings: JobSettings,
) -> None:
    ids = []
    for n in range(3):
        created = await client.post(
            "/api/v1/jobs/ping", json={"message": str(n)}, headers=user_headers
        )
        ids.append(created.json()["id"])
    await client.post("/api/v1/items/export", headers=user_headers)
    await runner.run(sessionmaker, UUID(ids[0]), settings=job_settings, kinds=KINDS)
    other = await token_headers(client, (await register(client))["email"])
    await client.post("/api/v1/jobs/ping", json={}, headers=other)

    everything = (await client.get("/api/v1/jobs", headers=user_headers)).json()
    assert everything["total"] == 4
    pings = (await client.get("/api/v1/jobs?kind=ping&limit=2", headers=user_headers)).json()
    assert pings["total"] == 3
    assert len(pings["items"]) == 2
    rest = (
        await client.get("/api/v1/jobs?kind=ping&limit=2&offset=2", headers=user_headers)
    ).json()
    seen = {j["id"] for j in pings["items"]} | {j["id"] for j in rest["items"]}
    assert seen == set(ids)
    done = (await client.get("/api/v1/jobs?status=succeeded", headers=user_headers)).json()
    assert [j["id"] for j in done["items"]] == [ids[0]]
    exports = (await client.get("/api/v1/jobs?kind=items.export", headers=user_headers)).json()
    assert exports["total"] == 1


async def test_cancel_a_queued_job(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_headers: dict[str, str],
    job_settings: JobSettings,
) -> None:
    job_id = (await client.post("/api/v1/jobs/ping", json={}, headers=user_headers)).json()["id"]
    cancelled = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=user_headers)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    # Its message may still arrive: the worker then finds nothing to run.
    assert (
        await runner.run(sessionmaker, UUID(job_id), settings=job_settings, kinds=KINDS)
        == "skipped"
    )
    again = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=user_headers)
    assert again.status_code == 409
    assert "already cancelled" in again.json()["error"]["message"]


async def run_as_ping(
    sessionmaker: async_sessionmaker[AsyncSession],
    owner: User,
    settings: JobSettings,
    handler: Callable[[AsyncSession, JobContext], Awaitable[Output]],
) -> tuple[str, Job]:
    """Create a ping job, run it with ``handler`` in place of the ping's, and
    return the run's outcome and the job as stored afterwards."""
    async with sessionmaker() as session, transaction(session):
        job = await repository.create(session, owner_id=owner.id, kind="ping", payload={})
    kinds = {"ping": JobKind("ping", handler)}
    outcome = await runner.run(sessionmaker, job.id, settings=settings, kinds=kinds)
    async with sessionmaker() as session:
        stored = await session.get(Job, job.id)
    assert stored is not None
    return outcome, stored


async def test_any_kind_may_produce_a_file_served_as_its_result(
    committed: tuple[async_sessionmaker[AsyncSession], User], job_settings: JobSettings
) -> None:
    """The engine serves a job's file with the media type and file name its
    handler gave, whatever the kind."""
    sessionmaker, owner = committed
    file = ResultFile(b"\x00\x01binary", "application/x-example", "example.bin")

    async def produces_a_file(session: AsyncSession, ctx: JobContext) -> Output:
        return Output(result={"ignored": True}, result_file=file)

    outcome, stored = await run_as_ping(sessionmaker, owner, job_settings, produces_a_file)
    assert outcome == "succeeded"
    async with sessionmaker() as session:
        result = await service.result(session, owner.id, stored.id)
    assert isinstance(result, service.StoredFile)
    assert (result.media_type, result.filename, result.size) == (
        file.media_type,
        file.filename,
        len(file.content),
    )
    assert b"".join([chunk async for chunk in service.read_file(sessionmaker, result)]) == (
        file.content
    )


async def test_cancelling_a_running_job_rolls_its_work_back(
    committed: tuple[async_sessionmaker[AsyncSession], User], job_settings: JobSettings
) -> None:
    sessionmaker, owner = committed

    async def cancelled_midway(session: AsyncSession, ctx: JobContext) -> Output:
        session.add(Item(owner_id=ctx.job.owner_id, sku="half-done", name="x", price=1, quantity=1))
        await session.flush()
        await ctx.progress(10, {"created": 1})
        async with sessionmaker() as other, transaction(other):
            await service.cancel(other, ctx.job.owner_id, ctx.id)
        await ctx.progress(50)  # notices the cancellation and stops
        raise AssertionError("progress should have raised JobLost")

    outcome, stored = await run_as_ping(sessionmaker, owner, job_settings, cancelled_midway)
    assert outcome == "lost"
    assert stored.status is JobStatus.cancelled
    assert stored.counts == {}  # the item it counted was rolled back
    async with sessionmaker() as session:
        assert await session.scalar(select(Item).where(Item.sku == "half-done")) is None


async def test_a_run_that_lost_its_job_records_nothing(
    committed: tuple[async_sessionmaker[AsyncSession], User], job_settings: JobSettings
) -> None:
    """The relay took the job back (and a second run claimed it) while the
    first run was still going: the first run's outcome and effects are dropped."""
    sessionmaker, owner = committed

    async def overtaken(session: AsyncSession, ctx: JobContext) -> Output:
        session.add(Item(owner_id=ctx.job.owner_id, sku="first-run", name="x", price=1, quantity=1))
        async with sessionmaker() as other, transaction(other):
            await other.execute(
                text("UPDATE jobs SET attempts = attempts + 1 WHERE id = :id"), {"id": ctx.id}
            )
        return Output(result={"from": "first run"})

    outcome, stored = await run_as_ping(sessionmaker, owner, job_settings, overtaken)
    assert outcome == "lost"
    assert stored.status is JobStatus.running
    assert stored.result is None
    async with sessionmaker() as session:
        assert await session.scalar(select(Item).where(Item.sku == "first-run")) is None


async def test_a_run_that_fails_after_losing_its_job_is_lost_not_failed(
    committed: tuple[async_sessionmaker[AsyncSession], User], job_settings: JobSettings
) -> None:
    sessionmaker, owner = committed

    async def cancelled_then_broken(session: AsyncSession, ctx: JobContext) -> Output:
        async with sessionmaker() as other, transaction(other):
            await service.cancel(other, ctx.job.owner_id, ctx.id)
        raise RuntimeError("after the cancel")

    outcome, stored = await run_as_ping(sessionmaker, owner, job_settings, cancelled_then_broken)
    assert outcome == "lost"
    assert stored.status is JobStatus.cancelled
    assert stored.error is None


async def test_a_lost_database_connection_requeues_until_attempts_run_out(
    committed: tuple[async_sessionmaker[AsyncSession], User], job_settings: JobSettings
) -> None:
    """The run's own connection is terminated by the server mid-run (a real
    fault, not a stand-in): the job goes back to the queue with its counts
    emptied, and fails for good on its last attempt."""
    sessionmaker, owner = committed
    assert job_settings.max_job_attempts == 3

    async def cut_off(session: AsyncSession, ctx: JobContext) -> Output:
        await ctx.progress(50, {"created": 10})
        backend = await session.scalar(text("SELECT pg_backend_pid()"))
        async with sessionmaker() as other, transaction(other):
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        await session.execute(text("SELECT 1"))
        raise AssertionError("the terminated connection should have failed")

    outcome, stored = await run_as_ping(sessionmaker, owner, job_settings, cut_off)
    assert (outcome, stored.status, stored.attempts) == ("requeued", JobStatus.queued, 1)
    assert stored.counts == {}
    assert stored.error is None

    kinds = {"ping": JobKind("ping", cut_off)}
    assert await runner.run(sessionmaker, stored.id, settings=job_settings, kinds=kinds) == (
        "requeued"
    )
    assert await runner.run(sessionmaker, stored.id, settings=job_settings, kinds=kinds) == (
        "failed"
    )
    async with sessionmaker() as session:
        last = await service.get(session, owner.id, stored.id)
    assert (last.status, last.attempts, last.counts) == (JobStatus.failed, 3, {})
    assert last.error is not None
    assert last.error.startswith("a transient database error (")
    assert last.error.endswith("on all 3 attempts; giving up (MAX_JOB_ATTEMPTS=3)")


async def test_a_run_longer_than_the_stale_limit_keeps_its_job(
    committed: tuple[async_sessionmaker[AsyncSession], User],
    producer: Celery,
    job_settings: JobSettings,
) -> None:
    """The heartbeat keeps a long run's job: the relay, running meanwhile,
    leaves it alone."""
    sessionmaker, owner = committed
    settings = job_settings.model_copy(
        update={"job_heartbeat_seconds": 0.2, "job_stale_after_seconds": 1.0}
    )
    relayed: list[relay.RelayReport] = []

    async def slow(session: AsyncSession, ctx: JobContext) -> Output:
        await asyncio.sleep(2.5)  # past JOB_STALE_AFTER_SECONDS, beating all along
        relayed.append(await relay.relay(sessionmaker, producer, settings))
        return Output(result={"slow": True})

    outcome, stored = await run_as_ping(sessionmaker, owner, settings, slow)
    assert outcome == "succeeded"
    assert (stored.status, stored.attempts) == (JobStatus.succeeded, 1)
    [report] = relayed
    assert stored.id not in (*report.requeued, *report.failed)


async def test_run_claims_once_and_records_the_result(
    sessionmaker: async_sessionmaker[AsyncSession], owner: User, job_settings: JobSettings
) -> None:
    async with sessionmaker() as session, transaction(session):
        job = await repository.create(
            session, owner_id=owner.id, kind="ping", payload={"message": "hi"}
        )

    assert await runner.run(sessionmaker, job.id, settings=job_settings, kinds=KINDS) == "succeeded"
    # A duplicate message (redelivery) is a no-op.
    assert await runner.run(sessionmaker, job.id, settings=job_settings, kinds=KINDS) == "skipped"

    async with sessionmaker() as session:
        stored = await service.get(session, owner.id, job.id)
        assert stored.status is JobStatus.succeeded
        assert stored.attempts == 1
        assert stored.progress == 100
        assert stored.result is not None
        assert stored.result["pong"] == "hi"
        assert stored.finished_at is not None


async def test_missing_job_is_skipped(
    sessionmaker: async_sessionmaker[AsyncSession], job_settings: JobSettings
) -> None:
    assert await runner.run(sessionmaker, uuid4(), settings=job_settings, kinds=KINDS) == "skipped"


async def test_a_failing_handler_marks_the_job_failed(
    sessionmaker: async_sessionmaker[AsyncSession], owner: User, job_settings: JobSettings
) -> None:
    async def broken(session: AsyncSession, ctx: JobContext) -> Output:
        raise RuntimeError("internal detail that is not for users")

    async with sessionmaker() as session, transaction(session):
        unknown = await repository.create(session, owner_id=owner.id, kind="ping", payload={})
        unknown.kind = "no-such-kind"
        failing = await repository.create(session, owner_id=owner.id, kind="ping", payload={})
    assert (
        await runner.run(sessionmaker, unknown.id, settings=job_settings, kinds=KINDS) == "failed"
    )
    kinds = {"ping": JobKind("ping", broken)}
    assert (
        await runner.run(sessionmaker, failing.id, settings=job_settings, kinds=kinds) == "failed"
    )
    async with sessionmaker() as session:
        stored = await service.get(session, owner.id, unknown.id)
        assert stored.status is JobStatus.failed
        assert stored.error == "this worker has no handler for job kind 'no-such-kind'"
        stored = await service.get(session, owner.id, failing.id)
        assert stored.error == "unexpected RuntimeError in the worker; its log has the details"


async def test_get_and_cancel_missing_raise_not_found(session: AsyncSession, owner: User) -> None:
    with pytest.raises(NotFound):
        await service.get(session, owner.id, uuid4())
    with pytest.raises(NotFound):
        await service.cancel(session, owner.id, uuid4())


async def test_cancel_a_finished_job_is_a_conflict(
    sessionmaker: async_sessionmaker[AsyncSession], owner: User, job_settings: JobSettings
) -> None:
    async with sessionmaker() as session, transaction(session):
        job = await repository.create(session, owner_id=owner.id, kind="ping", payload={})
    await runner.run(sessionmaker, job.id, settings=job_settings, kinds=KINDS)
    async with sessionmaker() as session:
        with pytest.raises(Conflict, match="already succeeded"):
            await service.cancel(session, owner.id, job.id)


async def test_enqueue_refuses_unknown_kinds(
    session: AsyncSession, producer: Celery, owner: User
) -> None:
    with pytest.raises(ValueError, match="unknown job kind"):
        await service.enqueue(
            session,
            producer,
            owner_id=owner.id,
            kind="nope",  # type: ignore[arg-type]  # a plain name, refused on purpose
            payload={},
        )
    with pytest.raises(ValueError, match="unknown job kind"):
        await service.enqueue(session, producer, owner_id=owner.id, kind=builtin.CRASH, payload={})


def test_the_poison_kind_never_runs_in_production() -> None:
    assert builtin.CRASH.name not in job_kinds("production")
    assert builtin.CRASH.name in job_kinds("test")


async def test_a_ping_names_its_worker_only_outside_production(
    sessionmaker: async_sessionmaker[AsyncSession], owner: User, job_settings: JobSettings
) -> None:
    """In production a ping's result (which its owner reads) carries neither
    the worker's hostname nor its pid; elsewhere it does (tests use them)."""
    results = {}
    for environment in ("production", "test"):
        async with sessionmaker() as session, transaction(session):
            job = await repository.create(
                session, owner_id=owner.id, kind="ping", payload={"message": environment}
            )
        kinds = job_kinds(environment)
        assert await runner.run(sessionmaker, job.id, settings=job_settings, kinds=kinds) == (
            "succeeded"
        )
        async with sessionmaker() as session:
            stored = await service.get(session, owner.id, job.id)
        assert stored.result is not None
        results[environment] = stored.result

    assert results["production"] == {"pong": "production"}
    assert "worker" not in results["production"]
    assert "pid" not in results["production"]
    assert socket.gethostname() not in json.dumps(results["production"])
    assert results["test"] == {
        "pong": "test",
        "worker": socket.gethostname(),
        "pid": os.getpid(),
    }


async def _age(session: AsyncSession, job_id: UUID, **columns: str) -> None:
    sets = ", ".join(f"{name} = now() - interval '{age}'" for name, age in columns.items())
    await session.execute(text(f"UPDATE jobs SET {sets} WHERE id = :id"), {"id": job_id})  # noqa: S608


async def test_relay_recovers_lost_and_abandoned_jobs(
    sessionmaker: async_sessionmaker[AsyncSession],
    producer: Celery,
    owner: User,
    job_settings: JobSettings,
) -> None:
    settings = job_settings.model_copy(
        update={
            "job_stale_after_seconds": 60,
            "job_resend_after_seconds": 30,
            "max_job_attempts": 3,
        }
    )
    async with sessionmaker() as session, transaction(session):
        fresh, lost, dead, exhausted, alive = [
            await repository.create(session, owner_id=owner.id, kind="ping", payload={})
            for _ in range(5)
        ]
        await _age(session, lost.id, enqueued_at="31 seconds")
        for job, attempts in ((dead, 1), (exhausted, 3), (alive, 1)):
            await session.execute(
                text("UPDATE jobs SET status = 'running', attempts = :n WHERE id = :id"),
                {"id": job.id, "n": attempts},
            )
        await _age(session, dead.id, heartbeat_at="61 seconds", enqueued_at="1 hour")
        await _age(session, exhausted.id, heartbeat_at="61 seconds")
        await _age(session, alive.id, heartbeat_at="30 seconds")

    report = await relay.relay(sessionmaker, producer, settings)
    assert list(report.failed) == [exhausted.id]
    assert list(report.requeued) == [dead.id]
    assert list(report.resent) == [lost.id]
    assert report.sent == 2

    async with sessionmaker() as session:
        statuses = {
            job.id: (await session.get(Job, job.id, populate_existing=True))
            for job in (fresh, lost, dead, exhausted, alive)
        }
        assert {i: j.status for i, j in statuses.items() if j} == {
            fresh.id: JobStatus.queued,
            lost.id: JobStatus.queued,
            dead.id: JobStatus.queued,
            exhausted.id: JobStatus.failed,
            alive.id: JobStatus.running,
        }
        error = statuses[exhausted.id].error  # type: ignore[union-attr]
        assert error is not None
        assert "stopped responding" in error
        assert "all 3 attempts" in error
        assert "MAX_JOB_ATTEMPTS=3" in error

    # Re-sent jobs wait another full period before being sent again.
    again = await relay.relay(sessionmaker, producer, settings)
    assert (list(again.failed), list(again.requeued), list(again.resent)) == ([], [], [])


async def test_claims_from_separate_connections_race_safely(
    engine: AsyncEngine, job_settings: JobSettings
) -> None:
    """Real concurrency: five connections claim the same committed job."""
    maker = create_sessionmaker(engine)
    async with maker() as session, transaction(session):
        user = User(email=f"race-{uuid4().hex[:8]}@example.com", hashed_password="x")
        session.add(user)
        await session.flush()
        job = await repository.create(session, owner_id=user.id, kind="ping", payload={})
    try:
        outcomes = await asyncio.gather(
            *(runner.run(maker, job.id, settings=job_settings, kinds=KINDS) for _ in range(5))
        )
        assert sorted(outcomes) == ["skipped"] * 4 + ["succeeded"]
    finally:
        async with maker() as session, transaction(session):
            await session.delete(await session.get(User, user.id))
