"""Health probes against the real database and Redis."""

from __future__ import annotations

import httpx
from alembic.script import ScriptDirectory
from fastapi import FastAPI

from core.migrations import alembic_config, head_revisions, known_revisions


async def test_live(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_everything_is_up(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok", "migrations": "ok"},
        "failed": [],
    }


def test_revisions_read_from_the_scripts_agree_with_alembic() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert head_revisions() == set(script.get_heads())
    assert known_revisions() == {s.revision for s in script.walk_revisions()}


async def test_ready_names_a_schema_behind_the_code(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    app.state.head_revisions = {"f00dfeedbeef"}
    response = await client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["migrations"]
    assert "f00dfeedbeef" in body["checks"]["migrations"]
    assert sorted(head_revisions())[0] in body["checks"]["migrations"]


async def test_ready_while_a_newer_release_has_migrated(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """During a rolling update the old instances see a revision they do not
    know; they stay ready (migrations are additive) instead of all dropping out."""
    app.state.known_revisions = set()
    response = await client.get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json()["checks"]["migrations"] == "ok"


async def test_ready_names_an_unreachable_redis(app: FastAPI, client: httpx.AsyncClient) -> None:
    from redis.asyncio import Redis

    good = app.state.redis
    # A port on the Redis host where nothing listens: a real connection failure.
    app.state.redis = Redis(host="redis", port=6390, socket_connect_timeout=1)
    try:
        response = await client.get("/health/ready")
    finally:
        await app.state.redis.aclose()
        app.state.redis = good
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["redis"]
    assert body["checks"]["redis"].startswith("error: ")


async def test_docs_are_served(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    assert "/health/ready" in schema["paths"]
