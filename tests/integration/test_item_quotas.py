"""The items quota (MAX_ITEMS_PER_USER): a create past it is a 403
``quota_exceeded``, race-free; an import stores new items up to it and
reports the rest as skipped; updates and other users are not affected."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.db import create_sessionmaker, transaction
from core.items import repository, service
from core.jobs import runner
from core.jobs_index import job_kinds
from core.models import User
from core.settings import JobSettings, Settings
from tests.integration.conftest import register, serve, token_headers, user_id, with_jobs

QUOTA = 5
HEADER = "sku,name,description,price,quantity\n"
KINDS = job_kinds("production")
Headers = dict[str, str]


def with_quota(settings: Settings, quota: int = QUOTA) -> Settings:
    return with_jobs(settings, max_items_per_user=quota)


@pytest.fixture
async def quota_client(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(with_quota(settings), sessionmaker) as client:
        yield client


@pytest.fixture
def quota_jobs(settings: Settings) -> JobSettings:
    """Job settings with the small quota and batches of 3 rows, so that the
    quota is reached inside a batch and later batches find it reached."""
    return with_quota(settings).jobs.model_copy(update={"import_batch_rows": 3})


async def new_user(client: httpx.AsyncClient) -> Headers:
    user = await register(client)
    return await token_headers(client, user["email"])


async def create(client: httpx.AsyncClient, headers: Headers, sku: str) -> httpx.Response:
    body = {"sku": sku, "name": f"Item {sku}", "price": "1.00", "quantity": 1}
    return await client.post("/api/v1/items", json=body, headers=headers)


async def total(client: httpx.AsyncClient, headers: Headers) -> int:
    response = await client.get("/api/v1/items?limit=1", headers=headers)
    count: int = response.json()["total"]
    return count


async def test_a_create_at_the_quota_is_403_until_an_item_is_deleted(
    quota_client: httpx.AsyncClient,
) -> None:
    headers = await new_user(quota_client)
    created = [await create(quota_client, headers, f"q-{n}") for n in range(QUOTA)]
    assert [response.status_code for response in created] == [201] * QUOTA

    refused = await create(quota_client, headers, "one-more")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert "MAX_ITEMS_PER_USER" in refused.json()["error"]["message"]
    assert "retry-after" not in refused.headers  # waiting frees nothing
    # A sku the user already has is still a conflict, not a quota matter.
    assert (await create(quota_client, headers, "q-0")).status_code == 409
    # Changing an item creates nothing: allowed at the quota.
    item_id = created[0].json()["id"]
    renamed = await quota_client.patch(
        f"/api/v1/items/{item_id}", json={"name": "Renamed"}, headers=headers
    )
    assert renamed.status_code == 200
    # Another user has a quota of their own.
    other = await new_user(quota_client)
    assert (await create(quota_client, other, "q-0")).status_code == 201

    deleted = await quota_client.delete(f"/api/v1/items/{item_id}", headers=headers)
    assert deleted.status_code == 204
    assert (await create(quota_client, headers, "one-more")).status_code == 201
    assert await total(quota_client, headers) == QUOTA


async def test_concurrent_creates_one_short_of_the_quota_store_exactly_one(
    settings: Settings, engine: AsyncEngine
) -> None:
    """Requests on their own connections, committing for real: without the
    owner's lock, each would count QUOTA - 1 items and all would pass."""
    async with serve(with_quota(settings)) as client:
        headers = await new_user(client)
        owner = await user_id(client, headers)
        try:
            for n in range(QUOTA - 1):
                assert (await create(client, headers, f"c-{n}")).status_code == 201
            responses = await asyncio.gather(
                *(create(client, headers, f"race-{n}") for n in range(8))
            )
            statuses = sorted(response.status_code for response in responses)
            assert statuses == [201] + [403] * 7
            assert await total(client, headers) == QUOTA
        finally:
            await delete_user(engine, owner)


async def test_a_create_during_an_import_of_the_owner_is_a_prompt_429(
    settings: Settings, engine: AsyncEngine
) -> None:
    """While an import holds the owner's item lock (as it commits, or for
    the whole of a run written again past the quota), a create waits at most
    LOCK_WAIT_SECONDS for it, then answers 429 (not a request holding a
    pooled connection for the whole import); another user's create is not
    held up, and the owner's works again once the import ends."""
    async with serve(with_quota(settings)) as client:
        headers, other = await new_user(client), await new_user(client)
        owner = await user_id(client, headers)
        try:
            async with create_sessionmaker(engine)() as importing, transaction(importing):
                await repository.lock_owner(importing, owner)
                started = time.monotonic()
                refused = await create(client, headers, "during")
                waited = time.monotonic() - started
                assert refused.status_code == 429, refused.text
                assert refused.json()["error"]["code"] == "too_many_requests"
                assert refused.headers["retry-after"] == "5"
                assert waited >= service.LOCK_WAIT_SECONDS
                assert (await create(client, other, "elsewhere")).status_code == 201
            assert (await create(client, headers, "after")).status_code == 201
        finally:
            await delete_user(engine, owner)


async def delete_user(engine: AsyncEngine, owner: UUID) -> None:
    async with create_sessionmaker(engine)() as session, transaction(session):
        await session.execute(delete(User).where(User.id == owner))


async def run_import(
    client: httpx.AsyncClient,
    headers: Headers,
    sessionmaker: async_sessionmaker[AsyncSession],
    jobs: JobSettings,
    content: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Upload ``content``, run its job as a worker would; the job and its report."""
    upload = await client.post(
        "/api/v1/items/import",
        files={"file": ("items.csv", content.encode(), "text/csv")},
        headers=headers,
    )
    assert upload.status_code == 202, upload.text
    job_id = upload.json()["id"]
    outcome = await runner.run(sessionmaker, UUID(job_id), settings=jobs, kinds=KINDS)
    assert outcome == "succeeded"
    job = (await client.get(f"/api/v1/jobs/{job_id}", headers=headers)).json()
    result = (await client.get(f"/api/v1/jobs/{job_id}/result", headers=headers)).json()
    return job, result


async def test_an_import_stores_new_items_up_to_the_quota_and_reports_the_rest(
    quota_client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    quota_jobs: JobSettings,
) -> None:
    headers = await new_user(quota_client)
    for sku in ("old-1", "old-2"):
        assert (await create(quota_client, headers, sku)).status_code == 201
    # Lines 2-9: two updates among six new skus and one invalid row; room
    # for three new items.
    rows = [
        "new-1,New,,1,1",
        "old-1,Changed,,1,1",
        "new-2,New,,1,1",
        "bad,,,1,1",
        "new-3,New,,1,1",
        "new-4,New,,1,1",
        "old-2,Changed,,1,1",
        "new-5,New,,1,1",
    ]
    job, result = await run_import(
        quota_client, headers, sessionmaker, quota_jobs, HEADER + "\n".join(rows) + "\n"
    )
    assert job["counts"] == {"rows": 8, "created": 3, "updated": 2, "unchanged": 0, "skipped": 3}
    assert result["errors"] == [{"line": 5, "column": "name", "reason": "is required"}]
    assert result["errors_truncated"] is False
    assert result["quota_exceeded"] == {
        "reason": f"quota_exceeded: MAX_ITEMS_PER_USER ({QUOTA}) reached",
        "skipped": 2,
        "first_line": 7,
    }
    listing = await quota_client.get("/api/v1/items?limit=10&sort=name", headers=headers)
    assert {item["sku"]: item["name"] for item in listing.json()["items"]} == {
        "new-1": "New",
        "new-2": "New",
        "new-3": "New",
        "old-1": "Changed",
        "old-2": "Changed",
    }

    # At the quota, an import still updates: only new items are skipped.
    again = HEADER + "old-1,Again,,1,1\nnew-9,New,,1,1\nnew-1,Again,,1,1\n"
    job, result = await run_import(quota_client, headers, sessionmaker, quota_jobs, again)
    assert job["counts"] == {"rows": 3, "created": 0, "updated": 2, "unchanged": 0, "skipped": 1}
    assert result["quota_exceeded"]["first_line"] == 3
    assert await total(quota_client, headers) == QUOTA

    # Another user imports as much as their own quota allows.
    other = await new_user(quota_client)
    fresh = HEADER + "".join(f"o-{n},Other,,1,1\n" for n in range(QUOTA + 1))
    job, result = await run_import(quota_client, other, sessionmaker, quota_jobs, fresh)
    assert job["counts"]["created"] == QUOTA
    assert result["quota_exceeded"]["skipped"] == 1


async def test_an_import_within_the_quota_reports_no_quota_entry(
    quota_client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    quota_jobs: JobSettings,
) -> None:
    headers = await new_user(quota_client)
    content = HEADER + "".join(f"w-{n},Within,,1,1\n" for n in range(QUOTA))
    job, result = await run_import(quota_client, headers, sessionmaker, quota_jobs, content)
    assert job["counts"]["created"] == QUOTA
    assert result["quota_exceeded"] is None
