"""One owner's imports run side by side (core.items.jobs): an import is
written without the owner's item lock and takes it only to count at its end,
so concurrent imports never pass MAX_ITEMS_PER_USER together, an import
whose rows wait uncommitted (a hung worker) holds up no other import of the
owner, and a create that meets such rows answers 429, never a 500."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from uuid import UUID

import httpx
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_sessionmaker, transaction
from core.items import repository
from core.jobs import runner
from core.jobs_index import job_kinds
from core.models import User
from core.settings import Settings
from tests.integration.conftest import register, serve, token_headers, user_id, with_jobs

QUOTA = 5
HEADER = "sku,name,description,price,quantity\n"
KINDS = job_kinds("production")
Headers = dict[str, str]


async def new_user(client: httpx.AsyncClient) -> tuple[Headers, UUID]:
    user = await register(client)
    headers = await token_headers(client, user["email"])
    return headers, await user_id(client, headers)


async def submit(client: httpx.AsyncClient, headers: Headers, rows: list[str]) -> UUID:
    content = HEADER + "".join(f"{row}\n" for row in rows)
    upload = await client.post(
        "/api/v1/items/import",
        files={"file": ("items.csv", content.encode(), "text/csv")},
        headers=headers,
    )
    assert upload.status_code == 202, upload.text
    return UUID(upload.json()["id"])


async def delete_user(engine: AsyncEngine, owner: UUID) -> None:
    async with create_sessionmaker(engine)() as session, transaction(session):
        await session.execute(delete(User).where(User.id == owner))


async def test_concurrent_imports_of_one_owner_store_exactly_up_to_the_quota(
    settings: Settings, engine: AsyncEngine
) -> None:
    """Eight imports of two new items each, run at once on their own
    connections (committing for real), with room for three: exactly three
    are created, and every other new row is reported skipped for the quota."""
    limited = with_jobs(settings, max_items_per_user=QUOTA)
    maker = create_sessionmaker(engine)
    async with serve(limited) as client:
        headers, owner = await new_user(client)
        try:
            for n in range(QUOTA - 3):
                body = {"sku": f"had-{n}", "name": "Had", "price": "1.00", "quantity": 1}
                assert (await client.post("/api/v1/items", json=body, headers=headers)).is_success
            jobs = [
                await submit(client, headers, [f"n{n}-a,New,,1,1", f"n{n}-b,New,,1,1"])
                for n in range(8)
            ]
            outcomes = await asyncio.gather(
                *(runner.run(maker, job, settings=limited.jobs, kinds=KINDS) for job in jobs)
            )
            assert outcomes == ["succeeded"] * len(jobs)
            counts = []
            for job in jobs:
                response = await client.get(f"/api/v1/jobs/{job}", headers=headers)
                counts.append(response.json()["counts"])
            assert sum(c["created"] for c in counts) == 3
            assert sum(c["skipped"] for c in counts) == 2 * len(jobs) - 3
            listing = await client.get("/api/v1/items?limit=1", headers=headers)
            assert listing.json()["total"] == QUOTA
        finally:
            await delete_user(engine, owner)


async def test_an_import_is_not_held_up_by_another_import_of_the_owner_in_progress(
    settings: Settings, engine: AsyncEngine
) -> None:
    """The rows of an import still being written (or of a worker that hung
    mid-import) are uncommitted and hold no owner lock: another import of
    the owner runs to the end meanwhile, and a create of another sku too."""
    maker = create_sessionmaker(engine)
    async with serve(settings) as client:
        headers, owner = await new_user(client)
        try:
            job = await submit(client, headers, ["second-1,Second,,1,1"])
            async with maker() as hung, transaction(hung):
                await repository.upsert(
                    hung, owner, [("first-1", "First", None, Decimal(1), 1)], fresh=False
                )
                outcome = await asyncio.wait_for(
                    runner.run(maker, job, settings=settings.jobs, kinds=KINDS), timeout=30
                )
                assert outcome == "succeeded"
                body = {"sku": "third-1", "name": "Third", "price": "1.00", "quantity": 1}
                created = await client.post("/api/v1/items", json=body, headers=headers)
                assert created.status_code == 201, created.text
                await hung.rollback()
            listing = await client.get("/api/v1/items?limit=10", headers=headers)
            assert sorted(i["sku"] for i in listing.json()["items"]) == ["second-1", "third-1"]
        finally:
            await delete_user(engine, owner)


async def test_a_create_of_a_sku_an_import_is_writing_is_a_429_not_a_500(
    settings: Settings, engine: AsyncEngine
) -> None:
    """A create waits for the import's uncommitted row of its sku while
    holding the owner's turn, and the import, at its end, waits for that
    turn: Postgres breaks the cycle (deadlock_timeout, 1 s by default). The
    create is refused as when an import held the turn (429, Retry-After)."""
    maker = create_sessionmaker(engine)
    async with serve(settings) as client:
        headers, owner = await new_user(client)
        try:
            async with maker() as importing, transaction(importing):
                await repository.upsert(
                    importing, owner, [("both-1", "Import", None, Decimal(1), 1)], fresh=False
                )
                body = {"sku": "both-1", "name": "Create", "price": "1.00", "quantity": 1}
                create = asyncio.create_task(
                    client.post("/api/v1/items", json=body, headers=headers)
                )
                await asyncio.sleep(0.3)  # the create now waits on the row
                await repository.lock_owner(importing, owner)
                response = await create
            assert response.status_code == 429, response.text
            assert response.json()["error"]["code"] == "too_many_requests"
            assert response.headers["retry-after"] == "5"
            listing = await client.get("/api/v1/items?limit=10", headers=headers)
            assert [i["name"] for i in listing.json()["items"]] == ["Import"]
        finally:
            await delete_user(engine, owner)


async def test_a_large_batch_that_may_pass_the_quota_is_written_under_the_lock(
    settings: Settings, engine: AsyncEngine
) -> None:
    """A batch large enough to be copied, with more rows than the room
    left: the run is started again holding the owner's lock (not written
    whole and rolled back at its end), and stores new items up to the quota
    in file order."""
    quota = 600
    limited = with_jobs(settings, max_items_per_user=quota)
    maker = create_sessionmaker(engine)
    async with serve(limited) as client:
        headers, owner = await new_user(client)
        try:
            job = await submit(client, headers, [f"big-{n:04d},Big,,1,1" for n in range(700)])
            outcome = await runner.run(maker, job, settings=limited.jobs, kinds=KINDS)
            assert outcome == "succeeded"
            done = (await client.get(f"/api/v1/jobs/{job}", headers=headers)).json()
            assert done["counts"]["created"] == quota
            assert done["counts"]["skipped"] == 100
            result = (await client.get(f"/api/v1/jobs/{job}/result", headers=headers)).json()
            assert result["quota_exceeded"]["first_line"] == quota + 2  # after the header
            async with maker() as session:
                stored = await session.execute(
                    text("SELECT count(*), max(sku) FROM items WHERE owner_id = :owner"),
                    {"owner": owner},
                )
                assert tuple(stored.one()) == (quota, f"big-{quota - 1:04d}")
        finally:
            await delete_user(engine, owner)
