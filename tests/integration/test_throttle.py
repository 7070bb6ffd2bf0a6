"""Login throttling in the real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.settings import Settings
from tests.integration.conftest import login, register, serve


@pytest.fixture
async def client_from(app: FastAPI) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """Clients that connect from different addresses."""
    clients = {
        ip: httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(ip, 40000)), base_url="http://test"
        )
        for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3")
    }
    yield clients
    for client in clients.values():
        await client.aclose()


async def test_eleventh_failure_for_an_email_is_429(
    client_from: dict[str, httpx.AsyncClient],
) -> None:
    attacker, owner = client_from["10.0.0.1"], client_from["10.0.0.2"]
    victim = await register(attacker)
    for _ in range(10):
        assert (await login(attacker, victim["email"], "wrong password!")).status_code == 401
    throttled = await login(attacker, victim["email"], "wrong password!")
    assert throttled.status_code == 429
    assert 0 < int(throttled.headers["retry-after"]) <= 60
    assert throttled.json()["error"]["code"] == "too_many_requests"
    # The account itself is throttled, from any address, even with the right password.
    assert (await login(owner, victim["email"])).status_code == 429


async def test_other_accounts_are_not_locked_out(
    client_from: dict[str, httpx.AsyncClient],
) -> None:
    attacker, bystander = client_from["10.0.0.1"], client_from["10.0.0.3"]
    victim = await register(attacker)
    other = await register(bystander)
    for _ in range(11):
        await login(attacker, victim["email"], "wrong password!")
    assert (await login(attacker, victim["email"])).status_code == 429
    assert (await login(bystander, other["email"])).status_code == 200


async def test_failures_from_one_address_are_limited(
    client_from: dict[str, httpx.AsyncClient],
) -> None:
    attacker, elsewhere = client_from["10.0.0.1"], client_from["10.0.0.2"]
    target = await register(elsewhere)
    for n in range(10):
        response = await login(attacker, f"guess{n}@example.com", "wrong password!")
        assert response.status_code == 401
    assert (await login(attacker, target["email"])).status_code == 429
    assert (await login(elsewhere, target["email"])).status_code == 200


async def test_success_clears_the_email_counter(
    client_from: dict[str, httpx.AsyncClient],
) -> None:
    client = client_from["10.0.0.1"]
    user = await register(client)
    for _ in range(5):
        await login(client, user["email"], "wrong password!")
    assert (await login(client, user["email"])).status_code == 200
    for _ in range(4):
        assert (await login(client, user["email"], "wrong password!")).status_code == 401


async def test_unreachable_redis_is_a_503_not_a_500(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """With nothing listening at REDIS_URL, a login (which needs the throttle
    counters) answers 503 with Retry-After once the client's retries ran out."""
    unreachable = settings.model_copy(
        update={"redis": settings.redis.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})}
    )
    async with serve(unreachable, sessionmaker) as client:
        user = await register(client)
        response = await login(client, user["email"])
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "service_unavailable"
