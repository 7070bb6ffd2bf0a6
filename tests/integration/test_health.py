"""Health probes against the real database and Redis."""

from __future__ import annotations

import logging

import httpx
import pytest
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from core.migrations import alembic_config, head_revisions, known_revisions
from core.settings import Settings
from tests.integration.conftest import serve


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


def production(settings: Settings, **redis: str) -> Settings:
    """``settings`` with ENVIRONMENT=production (the log format kept, so that
    the rest of the run logs as before) and, optionally, other Redis settings."""
    app = settings.app.model_copy(
        update={"environment": "production", "log_format": settings.app.effective_log_format}
    )
    return settings.model_copy(
        update={"app": app, "redis": settings.redis.model_copy(update=redis)}
    )


async def test_ready_in_production_shows_no_error_text(
    settings: Settings, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """Anyone may call the probe: in production a failed check is one fixed
    word, and the details go to the log only."""
    unreachable = production(settings, redis_url="redis://127.0.0.1:1/0")
    with caplog.at_level(logging.WARNING, logger="api.health"):
        async with serve(unreachable) as client:
            response = await client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body == {
        "status": "unavailable",
        "checks": {"database": "ok", "redis": "error", "migrations": "ok"},
        "failed": ["redis"],
    }
    for leak in ("Error", "Connection", "refused", "127.0.0.1", ":1", "111"):
        assert leak not in response.text, leak
    [record] = [r for r in caplog.records if r.name == "api.health"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert message.startswith("readiness check redis failed: error: ")
    assert "ConnectionError" in message
    assert "127.0.0.1:1" in message


async def test_ready_in_production_says_the_schema_is_behind(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app.state.settings = production(settings)
    app.state.head_revisions = {"f00dfeedbeef"}
    with caplog.at_level(logging.WARNING, logger="api.health"):
        response = await client.get("/health/ready")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "redis": "ok", "migrations": "behind"},
        "failed": ["migrations"],
    }
    assert "f00dfeedbeef" not in response.text
    [record] = [r for r in caplog.records if r.name == "api.health"]
    assert record.getMessage().startswith("readiness check migrations failed: error: database at")
    assert "f00dfeedbeef" in record.getMessage()


async def test_docs_are_served(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    assert "/health/ready" in schema["paths"]
