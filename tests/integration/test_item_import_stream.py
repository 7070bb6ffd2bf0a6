"""An import read from its stored chunks while its batches are written, on
connections of its own as in the worker (committing for real): rows cut by
chunk boundaries, text outside Latin-1, and a field of megabytes."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_sessionmaker, transaction
from core.jobs import runner
from core.jobs_index import job_kinds
from core.models import User
from core.settings import Settings
from tests.integration.conftest import register, serve, token_headers, user_id

HEADER = "sku,name,description,price,quantity\n"
MIB = 1024 * 1024


async def test_a_multi_chunk_import_with_a_huge_field_is_read_as_a_stream(
    settings: Settings, engine: AsyncEngine
) -> None:
    rows = [f"s-{n:06d},Größe {n} 名前 😀,,1.50,{n}\n" for n in range(60_000)]
    huge = "big,Big," + "x" * (3 * MIB) + ",1,1\n"
    content = (HEADER + "".join(rows[:30_000]) + huge + "".join(rows[30_000:])).encode()
    assert len(content) > 4 * MIB  # several stored chunks
    jobs = settings.jobs.model_copy(update={"import_batch_rows": 7_000})
    maker = create_sessionmaker(engine)
    async with serve(settings) as client:
        headers = await token_headers(client, (await register(client))["email"])
        owner = await user_id(client, headers)
        try:
            upload = await client.post(
                "/api/v1/items/import",
                files={"file": ("items.csv", content, "text/csv")},
                headers=headers,
            )
            assert upload.status_code == 202, upload.text
            job_id = upload.json()["id"]
            kinds = job_kinds("production")
            assert await runner.run(maker, UUID(job_id), settings=jobs, kinds=kinds) == "succeeded"
            job = (await client.get(f"/api/v1/jobs/{job_id}", headers=headers)).json()
            assert job["counts"] == {
                "rows": 60_001,
                "created": 60_000,
                "updated": 0,
                "unchanged": 0,
                "skipped": 1,
            }
            result = (await client.get(f"/api/v1/jobs/{job_id}/result", headers=headers)).json()
            [error] = result["errors"]
            assert error["line"] == 30_002
            assert error["reason"].startswith("malformed CSV (a record longer than")
            found = await client.get("/api/v1/items?q=59999", headers=headers)
            assert found.json()["items"][0]["name"] == "Größe 59999 名前 😀"
        finally:
            async with maker() as session, transaction(session):
                await session.execute(delete(User).where(User.id == owner))
