"""Job files in chunks on the real database: written and read back byte for
byte, an upload deleted when its job ends, a result streamed to its
download, purged after its retention, and the per-user quota of stored
files."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import httpx
import pytest
from celery import Celery
from fastapi import FastAPI
from sqlalchemy import event, func, make_url, select, text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from core.db import transaction
from core.errors import QuotaExceeded
from core.jobs import builtin, relay, repository, runner, service, storage
from core.jobs.context import JobContext, JobError, JobLost, Output
from core.jobs.files import CHUNK_BYTES
from core.jobs.kinds import JobKind
from core.jobs_index import job_kinds
from core.models import Job, JobFile, JobFileRole, JobStatus, User
from core.settings import JobSettings, Settings
from tests.integration.conftest import (
    recreate_database,
    register,
    serve,
    token_headers,
    user_id,
    with_jobs,
)
from tests.integration.test_migrations import alembic

Handler = Callable[[AsyncSession, JobContext], Awaitable[Output]]
Maker = async_sessionmaker[AsyncSession]
HEADER = "sku,name,description,price,quantity\n"
SIZES = [1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 2 * CHUNK_BYTES + 5]
KINDS = job_kinds("production")
IMPORT, EXPORT = KINDS["items.import"], KINDS["items.export"]


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


async def chunks(maker: Maker, job_id: UUID, role: JobFileRole) -> list[int]:
    """The sizes of the job's stored chunks of file ``role``, by seq."""
    async with maker() as session:
        rows = await session.execute(
            select(JobFile.seq, func.octet_length(JobFile.data))
            .where(JobFile.job_id == job_id, JobFile.role == role)
            .order_by(JobFile.seq)
        )
        found = rows.all()
    assert [seq for seq, _ in found] == list(range(len(found)))
    return [size for _, size in found]


async def create(maker: Maker, owner_id: UUID, input_file: bytes | None = None) -> Job:
    async with maker() as session, transaction(session):
        return await repository.create(
            session, owner_id=owner_id, kind="ping", payload={}, input_file=input_file
        )


async def claim(maker: Maker, job_id: UUID) -> Job:
    async with maker() as session, transaction(session):
        job = await repository.claim(session, job_id)
    assert job is not None
    return job


async def run_with(
    maker: Maker, job_id: UUID, settings: JobSettings, handler: Handler
) -> tuple[str, Job]:
    """Run the job with ``handler`` as its kind's; the outcome and the job
    as stored afterwards."""
    kinds = {"ping": JobKind("ping", handler)}
    outcome = await runner.run(maker, job_id, settings=settings, kinds=kinds)
    async with maker() as session:
        stored = await session.get(Job, job_id, populate_existing=True)
    assert stored is not None
    return outcome, stored


async def reads_its_input(session: AsyncSession, ctx: JobContext) -> Output:
    seen = [len(chunk) async for chunk in ctx.input_chunks()]
    return Output(result={"chunks": seen})


# Written and read back.


@pytest.mark.parametrize("size", [0, *SIZES])
async def test_an_upload_is_stored_in_chunks_and_read_back_exactly(
    sessionmaker: Maker, owner: User, job_settings: JobSettings, size: int
) -> None:
    data = payload(size)
    job = await create(sessionmaker, owner.id, data)
    assert job.input_bytes == size
    stored = await chunks(sessionmaker, job.id, JobFileRole.input)
    assert sum(stored) == size
    assert all(chunk == CHUNK_BYTES for chunk in stored[:-1])
    assert len(stored) == -(-size // CHUNK_BYTES)  # none for an empty file

    ctx = JobContext(await claim(sessionmaker, job.id), sessionmaker, job_settings)
    pieces = [chunk async for chunk in ctx.input_chunks()]
    assert [len(piece) for piece in pieces] == stored
    assert b"".join(pieces) == data
    assert await ctx.input_file() == (data or None)


async def test_chunks_are_compressed_with_lz4(sessionmaker: Maker, owner: User) -> None:
    """The test server has lz4 (as the official image has), so the migration
    set the column to it: a CSV chunk is stored lz4-compressed (pglz cost
    several times the database's CPU), and reads back exactly."""
    content = b"".join(b"SKU-%07d,Name %d,red oak,%d.50,%d\n" % (n, n, n, n) for n in range(40_000))
    assert len(content) > CHUNK_BYTES
    job = await create(sessionmaker, owner.id, content)
    async with sessionmaker() as session:
        methods = (
            await session.scalars(
                select(func.pg_column_compression(JobFile.data))
                .where(JobFile.job_id == job.id)
                .order_by(JobFile.seq)
            )
        ).all()
        column = await session.scalar(
            text(
                "SELECT attcompression::text FROM pg_attribute"
                " WHERE attrelid = 'job_files'::regclass AND attname = 'data'"
            )
        )
        stored = b"".join(
            (
                await session.scalars(
                    select(JobFile.data).where(JobFile.job_id == job.id).order_by(JobFile.seq)
                )
            ).all()
        )
    assert (column, methods) == ("l", ["lz4", "lz4"])
    assert stored == content


@pytest.mark.parametrize(
    "writes",
    [
        [],  # an empty file
        [CHUNK_BYTES],  # exactly one chunk: no empty second one
        [CHUNK_BYTES - 1, 1, 1],
        [3 * CHUNK_BYTES + 1],  # one write of several chunks
        [7001] * 400,  # many small writes across chunk edges
    ],
)
async def test_a_result_written_piece_by_piece_reads_back_exactly(
    sessionmaker: Maker, owner: User, job_settings: JobSettings, writes: list[int]
) -> None:
    data = payload(sum(writes), seed=1)

    async def writes_a_file(session: AsyncSession, ctx: JobContext) -> Output:
        writer = await ctx.result_writer(session, media_type="application/x-test", filename="t.bin")
        offset = 0
        for size in writes:
            await writer.write(data[offset : offset + size])
            offset += size
        return Output(result_file=await writer.close())

    job = await create(sessionmaker, owner.id)
    outcome, stored = await run_with(sessionmaker, job.id, job_settings, writes_a_file)
    assert outcome == "succeeded"
    assert (stored.result_bytes, stored.result_media_type) == (len(data), "application/x-test")
    sizes = await chunks(sessionmaker, job.id, JobFileRole.result)
    assert len(sizes) == -(-len(data) // CHUNK_BYTES)
    async with sessionmaker() as session:
        result = await service.result(session, owner.id, job.id)
    assert isinstance(result, service.StoredFile)
    assert b"".join([c async for c in service.read_file(sessionmaker, result)]) == data


# Uploads go when their job ends.


async def test_an_upload_is_deleted_when_its_job_succeeds(
    sessionmaker: Maker, owner: User, job_settings: JobSettings
) -> None:
    job = await create(sessionmaker, owner.id, payload(CHUNK_BYTES + 10))
    outcome, stored = await run_with(sessionmaker, job.id, job_settings, reads_its_input)
    assert outcome == "succeeded"
    assert stored.result == {"chunks": [CHUNK_BYTES, 10]}
    assert stored.input_bytes == 0
    assert await chunks(sessionmaker, job.id, JobFileRole.input) == []


async def test_an_upload_is_deleted_when_its_job_fails(
    sessionmaker: Maker, owner: User, job_settings: JobSettings
) -> None:
    async def refuses(session: AsyncSession, ctx: JobContext) -> Output:
        raise JobError("bad file")

    job = await create(sessionmaker, owner.id, payload(100))
    outcome, stored = await run_with(sessionmaker, job.id, job_settings, refuses)
    assert (outcome, stored.status, stored.error) == ("failed", JobStatus.failed, "bad file")
    assert stored.input_bytes == 0
    assert await chunks(sessionmaker, job.id, JobFileRole.input) == []


async def test_an_upload_is_deleted_when_its_queued_job_is_cancelled(
    client: httpx.AsyncClient, sessionmaker: Maker, user_headers: dict[str, str]
) -> None:
    content = (HEADER + "a,A,,1,1\n").encode()
    created = await client.post(
        "/api/v1/items/import",
        files={"file": ("items.csv", content, "text/csv")},
        headers=user_headers,
    )
    assert created.status_code == 202, created.text
    job_id = UUID(created.json()["id"])
    assert await chunks(sessionmaker, job_id, JobFileRole.input) == [len(content)]

    cancelled = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=user_headers)
    assert cancelled.json()["status"] == "cancelled"
    assert await chunks(sessionmaker, job_id, JobFileRole.input) == []
    async with sessionmaker() as session:
        job = await session.get(Job, job_id, populate_existing=True)
    assert job is not None
    assert job.input_bytes == 0


async def test_a_run_whose_job_is_cancelled_while_it_reads_is_lost(
    sessionmaker: Maker, owner: User, job_settings: JobSettings
) -> None:
    async def cancelled_while_reading(session: AsyncSession, ctx: JobContext) -> Output:
        async for _ in ctx.input_chunks():
            async with sessionmaker() as other, transaction(other):
                await service.cancel(other, ctx.job.owner_id, ctx.id)
        raise AssertionError("the next chunk is gone: JobLost")

    job = await create(sessionmaker, owner.id, payload(2 * CHUNK_BYTES))
    outcome, stored = await run_with(sessionmaker, job.id, job_settings, cancelled_while_reading)
    assert (outcome, stored.status) == ("lost", JobStatus.cancelled)
    assert await chunks(sessionmaker, job.id, JobFileRole.input) == []


async def test_an_upload_is_kept_when_its_job_is_requeued(
    committed: tuple[Maker, User], job_settings: JobSettings
) -> None:
    """A lost connection puts the job back in the queue: its next attempt
    reads the same upload."""
    maker, owner = committed
    data = payload(CHUNK_BYTES + 1)

    async def cut_off(session: AsyncSession, ctx: JobContext) -> Output:
        assert await ctx.input_file() == data
        backend = await session.scalar(text("SELECT pg_backend_pid()"))
        async with maker() as other, transaction(other):
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        await session.execute(text("SELECT 1"))
        raise AssertionError("the terminated connection should have failed")

    job = await create(maker, owner.id, data)
    outcome, stored = await run_with(maker, job.id, job_settings, cut_off)
    assert (outcome, stored.status) == ("requeued", JobStatus.queued)
    assert stored.input_bytes == len(data)
    assert await chunks(maker, job.id, JobFileRole.input) == [CHUNK_BYTES, 1]

    outcome, stored = await run_with(maker, job.id, job_settings, reads_its_input)
    assert (outcome, stored.attempts) == ("succeeded", 2)
    assert await chunks(maker, job.id, JobFileRole.input) == []


async def test_the_relay_deletes_the_upload_of_a_job_it_gives_up(
    sessionmaker: Maker, producer: Celery, owner: User, job_settings: JobSettings
) -> None:
    job = await create(sessionmaker, owner.id, payload(10))
    async with sessionmaker() as session, transaction(session):
        await session.execute(
            text(
                "UPDATE jobs SET status = 'running', attempts = :n, "
                "heartbeat_at = now() - interval '1 hour' WHERE id = :id"
            ),
            {"id": job.id, "n": job_settings.max_job_attempts},
        )
    report = await relay.relay(sessionmaker, producer, job_settings)
    assert job.id in report.failed
    assert await chunks(sessionmaker, job.id, JobFileRole.input) == []


# Results: fenced with their run, streamed, purged.


@pytest.mark.parametrize("how", ["cancelled", "taken over"])
async def test_a_run_that_loses_its_job_leaves_no_result_chunk(
    sessionmaker: Maker, owner: User, job_settings: JobSettings, how: str
) -> None:
    async def writes_then_loses(session: AsyncSession, ctx: JobContext) -> Output:
        writer = await ctx.result_writer(session, media_type="text/plain", filename="x.txt")
        await writer.write(b"x" * (2 * CHUNK_BYTES + 3))  # two chunks inserted already
        async with sessionmaker() as other, transaction(other):
            if how == "cancelled":
                await service.cancel(other, ctx.job.owner_id, ctx.id)
            else:
                await other.execute(
                    text("UPDATE jobs SET attempts = attempts + 1 WHERE id = :id"), {"id": ctx.id}
                )
        return Output(result_file=await writer.close())

    job = await create(sessionmaker, owner.id)
    outcome, stored = await run_with(sessionmaker, job.id, job_settings, writes_then_loses)
    assert outcome == "lost"
    assert (stored.result_bytes, stored.result_media_type) == (0, None)
    assert await chunks(sessionmaker, job.id, JobFileRole.result) == []


async def test_a_download_streams_chunk_by_chunk_with_its_length(
    client: httpx.AsyncClient,
    sessionmaker: Maker,
    connection: AsyncConnection,
    user_headers: dict[str, str],
    job_settings: JobSettings,
) -> None:
    data = payload(2 * CHUNK_BYTES + CHUNK_BYTES // 2, seed=2)

    async def writes(session: AsyncSession, ctx: JobContext) -> Output:
        writer = await ctx.result_writer(session, media_type="text/csv", filename="big.csv")
        for offset in range(0, len(data), 300_000):
            await writer.write(data[offset : offset + 300_000])
        return Output(result_file=await writer.close())

    job = await create(sessionmaker, await user_id(client, user_headers))
    assert (await run_with(sessionmaker, job.id, job_settings, writes))[0] == "succeeded"

    reads: list[str] = []

    def count(*args: Any) -> None:
        if "FROM job_files" in args[2]:
            reads.append(args[2])

    event.listen(connection.sync_connection, "before_cursor_execute", count)
    try:
        response = await client.get(f"/api/v1/jobs/{job.id}/result", headers=user_headers)
    finally:
        event.remove(connection.sync_connection, "before_cursor_execute", count)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="big.csv"'
    assert len(reads) == 3  # one query per chunk


async def test_downloads_past_the_per_process_limit_are_503_until_one_ends(
    app: FastAPI,
    client: httpx.AsyncClient,
    sessionmaker: Maker,
    user_headers: dict[str, str],
    job_settings: JobSettings,
) -> None:
    """DOWNLOADS_PER_PROCESS: with every slot taken (streams in progress) a
    download is refused before it starts; each download gives its slot back
    when it ends, and a refusal takes none."""
    data = payload(CHUNK_BYTES + 5, seed=6)

    async def writes(session: AsyncSession, ctx: JobContext) -> Output:
        writer = await ctx.result_writer(session, media_type="text/csv", filename="d.csv")
        await writer.write(data)
        return Output(result_file=await writer.close())

    job = await create(sessionmaker, await user_id(client, user_headers))
    assert (await run_with(sessionmaker, job.id, job_settings, writes))[0] == "succeeded"
    slots = app.state.download_slots
    assert slots.limit == job_settings.downloads_per_process
    url = f"/api/v1/jobs/{job.id}/result"

    slots.active = slots.limit  # every slot held by a stream in progress
    try:
        busy = await client.get(url, headers=user_headers)
    finally:
        slots.active = 0
    assert busy.status_code == 503
    assert busy.json()["error"]["code"] == "service_unavailable"
    assert busy.headers["retry-after"] == "5"
    for _ in range(3):
        served = await client.get(url, headers=user_headers)
        assert (served.status_code, served.content) == (200, data)
        assert slots.active == 0


async def test_an_expired_result_is_gone_and_purged_and_its_job_stays(
    client: httpx.AsyncClient,
    sessionmaker: Maker,
    user_headers: dict[str, str],
    job_settings: JobSettings,
) -> None:
    await client.post(
        "/api/v1/items",
        json={"sku": "a", "name": "A", "price": "1", "quantity": 1},
        headers=user_headers,
    )
    ids = []
    for _ in range(2):
        created = await client.post("/api/v1/items/export", headers=user_headers)
        assert created.status_code == 202, created.text
        ids.append(UUID(created.json()["id"]))
        assert await runner.run(
            sessionmaker, ids[-1], settings=job_settings, kinds={"items.export": EXPORT}
        ) == ("succeeded")
    old, fresh = ids
    hours = job_settings.result_retention_hours
    async with sessionmaker() as session, transaction(session):
        await session.execute(
            text(
                "UPDATE jobs SET finished_at = now() - make_interval(hours => :h, mins => 1) "
                "WHERE id = :id"
            ),
            {"id": old, "h": hours},
        )

    gone = await client.get(f"/api/v1/jobs/{old}/result", headers=user_headers)
    expected = {
        "error": {
            "code": "gone",
            "message": f"this job's result expired {hours} hours after the job finished "
            "(RESULT_RETENTION_HOURS) and was deleted; run the job again",
        }
    }
    assert (gone.status_code, gone.json()) == (410, expected)  # before the purge too

    limits = storage.FileLimits.of(job_settings)
    assert await storage.purge_expired(sessionmaker, limits) >= 1
    assert await chunks(sessionmaker, old, JobFileRole.result) == []
    again = await client.get(f"/api/v1/jobs/{old}/result", headers=user_headers)
    assert (again.status_code, again.json()) == (410, expected)
    job = await client.get(f"/api/v1/jobs/{old}", headers=user_headers)
    assert (job.status_code, job.json()["status"], job.json()["counts"]) == (
        200,
        "succeeded",
        {"rows": 1},
    )
    async with sessionmaker() as session:
        purged = await session.get(Job, old, populate_existing=True)
    assert purged is not None
    assert purged.result_purged_at is not None
    assert purged.result_bytes == 0

    # The fresh one is untouched.
    assert len(await chunks(sessionmaker, fresh, JobFileRole.result)) == 1
    kept = await client.get(f"/api/v1/jobs/{fresh}/result", headers=user_headers)
    assert kept.status_code == 200
    assert kept.text.startswith(HEADER.rstrip("\n"))


# Results and uploads the release before chunks stored in the row.


async def test_files_in_the_old_columns_are_still_read(
    client: httpx.AsyncClient,
    sessionmaker: Maker,
    user_headers: dict[str, str],
    job_settings: JobSettings,
) -> None:
    owner = await user_id(client, user_headers)
    data = payload(CHUNK_BYTES + 7, seed=3)
    job = await create(sessionmaker, owner)
    async with sessionmaker() as session, transaction(session):
        await session.execute(
            text("UPDATE jobs SET input_file = :data WHERE id = :id"), {"id": job.id, "data": data}
        )
    outcome, stored = await run_with(sessionmaker, job.id, job_settings, reads_its_input)
    assert (outcome, stored.result) == ("succeeded", {"chunks": [CHUNK_BYTES, 7]})
    async with sessionmaker() as session, transaction(session):
        await session.execute(
            text(
                "UPDATE jobs SET result_file = :data, result_media_type = 'text/csv', "
                "result_filename = 'old.csv', input_file = NULL WHERE id = :id"
            ),
            {"id": job.id, "data": data},
        )
    response = await client.get(f"/api/v1/jobs/{job.id}/result", headers=user_headers)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-length"] == str(len(data))


# The quota of stored files.


def quota_settings(settings: Settings, max_bytes: int) -> Settings:
    return with_jobs(settings, max_stored_file_bytes_per_user=max_bytes)


async def import_file(client: httpx.AsyncClient, headers: dict[str, str], size: int) -> Any:
    rows = "".join(f"sku-{n:05d},Item,,1,1\n" for n in range(size))
    content = (HEADER + rows).encode()[:size]
    content = content[: content.rfind(b"\n") + 1]
    return await client.post(
        "/api/v1/items/import",
        files={"file": ("items.csv", content, "text/csv")},
        headers=headers,
    )


async def test_uploads_past_the_quota_are_refused_until_space_frees(
    settings: Settings, sessionmaker: Maker
) -> None:
    async with serve(quota_settings(settings, 1000), sessionmaker) as client:
        headers = await token_headers(client, (await register(client))["email"])
        first = await import_file(client, headers, 600)
        assert first.status_code == 202, first.text
        refused = await import_file(client, headers, 600)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == str(storage.INPUT_WAIT_SECONDS)
        error = refused.json()["error"]
        assert error["code"] == "quota_exceeded"
        assert "MAX_STORED_FILE_BYTES_PER_USER" in error["message"]
        # Another user has their own quota.
        other = await token_headers(client, (await register(client))["email"])
        assert (await import_file(client, other, 600)).status_code == 202
        # The first job ends: its upload goes, and the space with it.
        await client.post(f"/api/v1/jobs/{first.json()['id']}/cancel", headers=headers)
        assert (await import_file(client, headers, 600)).status_code == 202


async def test_an_upload_larger_than_the_quota_itself_is_403(
    settings: Settings, sessionmaker: Maker
) -> None:
    async with serve(quota_settings(settings, 100), sessionmaker) as client:
        headers = await token_headers(client, (await register(client))["email"])
        refused = await import_file(client, headers, 300)
        assert refused.status_code == 403
        assert "retry-after" not in refused.headers
        assert refused.json()["error"]["code"] == "quota_exceeded"


async def test_an_export_waits_until_results_expire(
    settings: Settings, sessionmaker: Maker
) -> None:
    retention = settings.jobs.result_retention_hours
    async with serve(quota_settings(settings, 1000), sessionmaker) as client:
        headers = await token_headers(client, (await register(client))["email"])
        owner = await user_id(client, headers)
        job = await create(sessionmaker, owner)
        async with sessionmaker() as session, transaction(session):
            await session.execute(
                text(
                    "UPDATE jobs SET status = 'succeeded', finished_at = now(), "
                    "result_bytes = 1000, result_media_type = 'text/csv' WHERE id = :id"
                ),
                {"id": job.id},
            )
        refused = await client.post("/api/v1/items/export", headers=headers)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "quota_exceeded"
        wait = int(refused.headers["retry-after"])
        assert retention * 3600 - 60 <= wait <= retention * 3600
        # A ping makes no file: not refused.
        assert (await client.post("/api/v1/jobs/ping", json={}, headers=headers)).status_code == (
            202
        )
        # Once that result has expired (purged or not), it counts no more.
        async with sessionmaker() as session, transaction(session):
            await session.execute(
                text(
                    "UPDATE jobs SET finished_at = now() - make_interval(hours => :h, mins => 1) "
                    "WHERE id = :id"
                ),
                {"id": job.id, "h": retention},
            )
        assert (await client.post("/api/v1/items/export", headers=headers)).status_code == 202


async def test_a_result_past_the_room_left_fails_its_job_and_leaves_nothing(
    sessionmaker: Maker, owner: User, job_settings: JobSettings
) -> None:
    settings = job_settings.model_copy(update={"max_stored_file_bytes_per_user": CHUNK_BYTES + 10})
    other = await create(sessionmaker, owner.id, payload(10))  # holds 10 bytes

    async def too_large(session: AsyncSession, ctx: JobContext) -> Output:
        writer = await ctx.result_writer(session, media_type="text/plain", filename="x")
        await writer.write(b"x" * CHUNK_BYTES)  # fits exactly, and is inserted
        await writer.write(b"x")
        raise AssertionError("past the room left")

    job = await create(sessionmaker, owner.id)
    outcome, stored = await run_with(sessionmaker, job.id, settings, too_large)
    assert (outcome, stored.status) == ("failed", JobStatus.failed)
    assert stored.error is not None
    assert "MAX_STORED_FILE_BYTES_PER_USER" in stored.error
    assert f"({CHUNK_BYTES} bytes" in stored.error
    assert await chunks(sessionmaker, job.id, JobFileRole.result) == []
    assert await chunks(sessionmaker, other.id, JobFileRole.input) == [10]


async def test_concurrent_uploads_cannot_pass_the_quota_together(
    committed: tuple[Maker, User], producer: Celery
) -> None:
    """Two uploads that fit one at a time, submitted at once from separate
    connections: the owner's lock lets exactly one in."""
    maker, owner = committed
    limits = storage.FileLimits(max_bytes_per_user=1000, retention_hours=1)

    async def submit() -> Job:
        async with maker() as session, transaction(session):
            return await service.enqueue(
                session,
                producer,
                owner_id=owner.id,
                kind=IMPORT,
                payload={},
                input_file=b"x" * 600,
                file_limits=limits,
            )

    outcomes = await asyncio.gather(*(submit() for _ in range(4)), return_exceptions=True)
    accepted = [o for o in outcomes if isinstance(o, Job)]
    refused = [o for o in outcomes if isinstance(o, QuotaExceeded)]
    assert (len(accepted), len(refused)) == (1, 3), outcomes


def test_the_ping_makes_no_file() -> None:
    assert not builtin.PING.makes_file
    assert EXPORT.makes_file
    assert not IMPORT.makes_file


async def test_the_context_reports_a_lost_input_as_job_lost(
    sessionmaker: Maker, owner: User, job_settings: JobSettings
) -> None:
    job = await create(sessionmaker, owner.id, payload(2 * CHUNK_BYTES))
    ctx = JobContext(await claim(sessionmaker, job.id), sessionmaker, job_settings)
    reader = ctx.input_chunks()
    assert len(await anext(reader)) == CHUNK_BYTES
    async with sessionmaker() as session, transaction(session):
        await session.execute(
            text("DELETE FROM job_files WHERE job_id = :id AND seq = 1"), {"id": job.id}
        )
    with pytest.raises(JobLost):
        await anext(reader)
    assert ctx.lost


# The migration that introduced chunks.

BEFORE_CHUNKS, CHUNKS = "d4aab0133902", "f5a2c7e91b04"


async def test_the_migration_moves_stored_files_into_chunks_and_back(settings: Settings) -> None:
    name = (make_url(settings.db.direct_url.url).database or "") + "_files"
    await recreate_database(settings, name)
    url = make_url(settings.db.direct_url.url).set(database=name)
    rendered = url.render_as_string(hide_password=False)
    assert alembic(rendered, "upgrade", BEFORE_CHUNKS).returncode == 0
    upload, result = payload(2 * CHUNK_BYTES + 3, seed=4), payload(CHUNK_BYTES, seed=5)
    engine = create_async_engine(url, connect_args=settings.db.direct_url.connect_args)
    insert = text(
        "INSERT INTO jobs (owner_id, kind, status, input_file, result_file, result_media_type, "
        "result_filename, finished_at) VALUES (:owner, :kind, CAST(:status AS job_status), "
        ":input, :result, :type, :filename, now()) RETURNING id"
    )
    try:
        async with engine.begin() as db:
            owner = await db.scalar(
                text(
                    "INSERT INTO users (email, hashed_password) VALUES ('m@x.io', 'x') RETURNING id"
                )
            )
            rows: dict[str, dict[str, Any]] = {
                "queued": {"kind": "items.import", "status": "queued", "input": upload},
                "ended": {"kind": "items.import", "status": "succeeded", "input": b"gone"},
                "export": {"kind": "items.export", "status": "succeeded", "result": result},
                "untyped": {"kind": "ping", "status": "succeeded", "result": b"ab"},
            }
            ids = {}
            for key, row in rows.items():
                values = {"owner": owner, "input": None, "result": None, "type": None}
                values |= {"filename": None, **row}
                if key == "export":
                    values |= {"type": "text/csv; charset=utf-8", "filename": "e.csv"}
                ids[key] = await db.scalar(insert, values)

        assert alembic(rendered, "upgrade", CHUNKS).returncode == 0
        sizes = text(
            "SELECT role::text, array_agg(octet_length(data) ORDER BY seq), "
            "string_agg(data, ''::bytea ORDER BY seq) FROM job_files WHERE job_id = :id "
            "GROUP BY role"
        )
        columns = text(
            "SELECT input_bytes, result_bytes, input_file, result_file, "
            "result_media_type, result_filename FROM jobs WHERE id = :id"
        )
        async with engine.connect() as db:
            files = {key: (await db.execute(sizes, {"id": ids[key]})).all() for key in ids}
            jobs = {key: (await db.execute(columns, {"id": ids[key]})).one() for key in ids}
        assert files["queued"] == [("input", [CHUNK_BYTES, CHUNK_BYTES, 3], upload)]
        assert files["ended"] == []  # its job ended: dropped
        assert files["export"] == [("result", [CHUNK_BYTES], result)]
        assert files["untyped"] == [("result", [2], b"ab")]
        # The old columns keep their copy for the previous release, still
        # running during the rolling update; an ended job's upload is gone.
        assert tuple(jobs["queued"]) == (len(upload), 0, upload, None, None, None)
        assert tuple(jobs["ended"]) == (0, 0, None, None, None, None)
        export = (0, CHUNK_BYTES, None, result, "text/csv; charset=utf-8", "e.csv")
        assert tuple(jobs["export"]) == export
        untyped = ("application/octet-stream", f"ping-{ids['untyped']}")
        assert tuple(jobs["untyped"])[4:] == untyped

        assert alembic(rendered, "downgrade", BEFORE_CHUNKS).returncode == 0
        back = text("SELECT input_file, result_file FROM jobs WHERE id = :id")
        async with engine.connect() as db:
            assert tuple((await db.execute(back, {"id": ids["queued"]})).one()) == (upload, None)
            assert tuple((await db.execute(back, {"id": ids["export"]})).one()) == (None, result)
    finally:
        await engine.dispose()


async def test_the_quota_is_reached_exactly_not_passed(
    session: AsyncSession, producer: Celery, owner: User
) -> None:
    limits = storage.FileLimits(max_bytes_per_user=1000, retention_hours=1)

    async def submit(kind: JobKind, size: int | None) -> Job:
        # A refusal rolls back what the submit wrote, as a request's
        # transaction does.
        savepoint = await session.begin_nested()
        try:
            job = await service.enqueue(
                session,
                producer,
                owner_id=owner.id,
                kind=kind,
                payload={},
                input_file=None if size is None else b"x" * size,
                file_limits=limits,
            )
        except QuotaExceeded:
            await savepoint.rollback()
            raise
        await savepoint.commit()
        return job

    with pytest.raises(QuotaExceeded) as too_large:
        await submit(IMPORT, 1001)
    assert too_large.value.status_code == 403
    await submit(IMPORT, 400)
    await submit(EXPORT, None)  # 400 stored: under the quota
    await submit(IMPORT, 599)
    await submit(EXPORT, None)  # 999 stored
    with pytest.raises(QuotaExceeded) as one_more:
        await submit(IMPORT, 2)
    assert (one_more.value.status_code, one_more.value.retry_after) == (
        429,
        storage.INPUT_WAIT_SECONDS,
    )
    await submit(IMPORT, 1)  # exactly 1000
    with pytest.raises(QuotaExceeded):
        await submit(EXPORT, None)
    with pytest.raises(QuotaExceeded):
        await submit(IMPORT, 1)


async def test_a_large_upload_past_the_quota_is_refused_before_it_is_written(
    session: AsyncSession, producer: Celery, owner: User
) -> None:
    """Past the stored-files quota, an upload above PRECHECK_MIN_BYTES is
    refused before anything is written; one at or below it is written,
    refused under the owner's lock (the caller's transaction rolls it back).
    Both get the same refusal."""
    limits = storage.FileLimits(max_bytes_per_user=1000, retention_hours=1)
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    connection = (await session.connection()).sync_connection
    assert connection is not None
    inserted: dict[int, list[str]] = {}
    for size in (service.PRECHECK_MIN_BYTES + 1, service.PRECHECK_MIN_BYTES):
        statements.clear()
        savepoint = await session.begin_nested()
        event.listen(connection, "before_cursor_execute", record)
        try:
            with pytest.raises(QuotaExceeded) as refused:
                await service.enqueue(
                    session,
                    producer,
                    owner_id=owner.id,
                    kind=IMPORT,
                    payload={},
                    input_file=b"x" * size,
                    file_limits=limits,
                )
        finally:
            event.remove(connection, "before_cursor_execute", record)
            await savepoint.rollback()
        assert refused.value.status_code == 403
        inserted[size] = [s.split("(")[0].strip() for s in statements if s.startswith("INSERT")]
    assert inserted == {
        service.PRECHECK_MIN_BYTES + 1: [],
        service.PRECHECK_MIN_BYTES: ["INSERT INTO jobs", "INSERT INTO job_files"],
    }
    count = select(func.count()).select_from(Job).where(Job.owner_id == owner.id)
    assert await session.scalar(count) == 0


async def test_a_finished_result_is_checked_again_under_the_lock(
    session: AsyncSession, producer: Celery, owner: User
) -> None:
    """Exports that ran at once were each allowed what was free when they
    started; each result is checked again, one by one, before it is kept.
    Uploads of jobs that have ended (by the release before chunks, during a
    rolling update) no longer count."""
    limits = storage.FileLimits(max_bytes_per_user=1000, retention_hours=1)
    held = await service.enqueue(
        session,
        producer,
        owner_id=owner.id,
        kind=IMPORT,
        payload={},
        input_file=b"x" * 900,
        file_limits=limits,
    )
    exporting = await service.enqueue(
        session, producer, owner_id=owner.id, kind=EXPORT, payload={}, file_limits=limits
    )
    assert await storage.fits_result(session, owner.id, exporting.id, 100, limits)
    assert not await storage.fits_result(session, owner.id, exporting.id, 101, limits)
    # The upload's job ended without its upload being released: not counted.
    await session.execute(
        text("UPDATE jobs SET status = 'succeeded' WHERE id = :id"), {"id": held.id}
    )
    assert await storage.fits_result(session, owner.id, exporting.id, 1000, limits)
