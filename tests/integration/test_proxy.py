"""The client's address behind proxies, as the throttles and the access log
see it through the real app: X-Forwarded-For is believed only from a trusted
proxy, and only its right-most, proxy-appended part."""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.main import create_app
from core.settings import Settings
from tests.integration.conftest import PASSWORD

WRONG = "wrong password!"
PROXY_NETWORK = "10.9.0.0/24"
PROXY = "10.9.0.5"  # the trusted proxy the requests come through
OUTSIDER = "192.0.2.10"  # a peer that is no proxy of ours
RENDER_PROXY = "10.201.4.3"  # with "*": whatever address Render's proxy has
ATTACKER = "203.0.113.50"  # real addresses, as the proxy appends them
NEIGHBOUR = "203.0.113.51"


@asynccontextmanager
async def app_trusting(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], proxies: str
) -> AsyncIterator[FastAPI]:
    """The app with FORWARDED_ALLOW_IPS=``proxies``, in the test's transaction."""
    web = settings.web.model_copy(update={"forwarded_allow_ips": proxies})
    app = create_app(settings.model_copy(update={"web": web}))
    async with app.router.lifespan_context(app):
        app.state.sessionmaker = app.state.read_sessionmaker = sessionmaker
        yield app


def client_at(app: FastAPI, ip: str) -> httpx.AsyncClient:
    """A client whose connections come from ``ip``."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(ip, 40000)), base_url="http://test"
    )


def forged() -> str:
    """What a client writes into X-Forwarded-For itself: one to three random
    entries, new every time (some of them our proxies' or the neighbour's)."""

    def entry() -> str:
        kind = random.randrange(5)
        if kind == 0:
            return ".".join(str(random.randint(1, 254)) for _ in range(4))
        if kind == 1:
            return f"2001:db8:{random.randint(0, 0xFFFF):x}::{random.randint(1, 0xFFFF):x}"
        if kind == 2:
            return f"10.9.0.{random.randint(1, 254)}"
        return NEIGHBOUR if kind == 3 else "unknown"

    return ", ".join(entry() for _ in range(random.randint(1, 3)))


async def login(
    client: httpx.AsyncClient, email: str, password: str, forwarded_for: str | None = None
) -> int:
    """POST the login form, with this X-Forwarded-For; the status code."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    response = await client.post(
        "/api/v1/auth/login", data={"username": email, "password": password}, headers=headers
    )
    return response.status_code


async def register(client: httpx.AsyncClient, forwarded_for: str | None = None) -> httpx.Response:
    """Register a fresh email, with this X-Forwarded-For."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    email = f"user-{uuid.uuid4().hex[:12]}@example.com"
    return await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}, headers=headers
    )


def random_email() -> str:
    return f"guess-{uuid.uuid4().hex[:12]}@example.com"


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    redis = Redis.from_url(settings.redis.redis_url)
    yield redis
    await redis.aclose()


async def counted_addresses(redis: Redis) -> dict[str, int]:
    """The password-check failures counted per client address."""
    counts: dict[str, int] = {}
    for key in await redis.keys("pw:fail:ip:*"):
        name = key.decode() if isinstance(key, bytes) else key
        counts[name.removeprefix("pw:fail:ip:")] = int(await redis.get(key) or 0)
    return counts


async def test_forging_through_the_trusted_proxy_never_resets_the_count(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    """An attacker behind our proxy writes a new X-Forwarded-For left part on
    every request; the proxy appends its real address. It is counted as that
    one address: refused after the limit, for every email, while a neighbour
    behind the same proxy still logs in."""
    limit = settings.auth.login_max_failures_per_ip
    async with (
        app_trusting(settings, sessionmaker, PROXY_NETWORK) as app,
        client_at(app, PROXY) as proxy,
    ):
        owner = await register(proxy, f"{forged()}, {NEIGHBOUR}")
        assert owner.status_code == 201, owner.text
        email = owner.json()["email"]
        for _ in range(limit):
            assert await login(proxy, random_email(), WRONG, f"{forged()}, {ATTACKER}") == 401
        assert await counted_addresses(redis) == {ATTACKER: limit}

        for forwarded_for in (f"{forged()}, {ATTACKER}", f"{NEIGHBOUR}, {ATTACKER}"):
            assert await login(proxy, random_email(), WRONG, forwarded_for) == 429
            assert await login(proxy, email, PASSWORD, forwarded_for) == 429
        assert await login(proxy, email, PASSWORD, f"{forged()}, {NEIGHBOUR}") == 200
        assert await login(proxy, email, PASSWORD, NEIGHBOUR) == 200


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    """The same forged headers sent straight to the app, not through the
    proxy: the peer is the client, whatever they say."""
    limit = settings.auth.login_max_failures_per_ip
    async with (
        app_trusting(settings, sessionmaker, PROXY_NETWORK) as app,
        client_at(app, OUTSIDER) as outsider,
        client_at(app, PROXY) as proxy,
    ):
        owner = await register(proxy, NEIGHBOUR)
        assert owner.status_code == 201, owner.text
        for n in range(limit):
            # Even claiming to come through our proxy, or to be the neighbour.
            claim = (f"{forged()}, {ATTACKER}", f"{NEIGHBOUR}, {PROXY}", NEIGHBOUR)[n % 3]
            assert await login(outsider, random_email(), WRONG, claim) == 401
        assert await counted_addresses(redis) == {OUTSIDER: limit}
        assert await login(outsider, owner.json()["email"], PASSWORD, NEIGHBOUR) == 429
        assert await login(proxy, owner.json()["email"], PASSWORD, NEIGHBOUR) == 200


async def test_star_takes_the_address_the_platform_appended(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """FORWARDED_ALLOW_IPS=* (Render): a client's own ``X-Forwarded-For:
    1.2.3.4`` stays left of the address Render's proxy appends; the access
    log and the throttle see the appended one."""
    async with (
        app_trusting(settings, sessionmaker, "*") as app,
        client_at(app, RENDER_PROXY) as render,
    ):
        with caplog.at_level(logging.INFO, logger="appstack.access"):
            response = await render.get(
                "/api/v1/users/me", headers={"X-Forwarded-For": f"1.2.3.4, {ATTACKER}"}
            )
        assert response.status_code == 401
        [record] = [r for r in caplog.records if r.name == "appstack.access"]
        assert record.client == ATTACKER  # type: ignore[attr-defined]

        limit = settings.auth.login_max_failures_per_ip
        for _ in range(limit):
            assert await login(render, random_email(), WRONG, f"1.2.3.4, {ATTACKER}") == 401
        assert await counted_addresses(redis) == {ATTACKER: limit}
        assert await login(render, random_email(), WRONG, f"{forged()}, {ATTACKER}") == 429
        # The one whose address was forged is not blocked.
        assert await login(render, random_email(), WRONG, "1.2.3.4") == 401


async def test_the_registration_limit_holds_through_the_trusted_proxy(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    limit = settings.auth.register_max_per_ip
    async with (
        app_trusting(settings, sessionmaker, PROXY_NETWORK) as app,
        client_at(app, PROXY) as proxy,
    ):
        for _ in range(limit):
            response = await register(proxy, f"{forged()}, {ATTACKER}")
            assert response.status_code == 201, response.text
        for forwarded_for in (f"{forged()}, {ATTACKER}", f"{NEIGHBOUR}, {ATTACKER}"):
            response = await register(proxy, forwarded_for)
            assert response.status_code == 429, response.text
        assert await redis.keys("register:ip:*") == [f"register:ip:{ATTACKER}".encode()]
        response = await register(proxy, f"{forged()}, {NEIGHBOUR}")
        assert response.status_code == 201, response.text
