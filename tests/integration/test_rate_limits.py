"""Request rate limits (api/ratelimit.py) through the real app and Redis:
per user and per client address, the 429 and its headers, the paths that are
never limited, the window's end, and a failing Redis."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api import ratelimit
from api.main import create_app
from core.settings import Settings, SettingsError, load_settings
from tests.integration.conftest import register, token_headers

PROXY = "10.9.0.5"  # a trusted proxy, as in test_proxy.py
# A Structured Field List (RFC 9651) of String items with Integer parameters,
# as draft-ietf-httpapi-ratelimit-headers-11 spells both fields.
_ITEM = r'"([a-z]+)";{0}=(\d+);{1}=(\d+)'


def parse(value: str, first: str, second: str) -> dict[str, tuple[int, int]]:
    """A RateLimit or RateLimit-Policy value by policy name; fails the test
    on anything that is not the draft's syntax."""
    item = _ITEM.format(first, second)
    assert re.fullmatch(f"{item}(, {item})*", value), value
    return {m[0]: (int(m[1]), int(m[2])) for m in re.findall(item, value)}


def limits_of(response: httpx.Response) -> dict[str, tuple[int, int]]:
    """The RateLimit header: remaining and seconds to reset, by policy."""
    return parse(response.headers["RateLimit"], "r", "t")


def policies_of(response: httpx.Response) -> dict[str, tuple[int, int]]:
    """The RateLimit-Policy header: quota and window, by policy."""
    return parse(response.headers["RateLimit-Policy"], "q", "w")


@asynccontextmanager
async def limited(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    user: str = "1000/minute",
    address: str = "1000/minute",
    redis_url: str | None = None,
) -> AsyncIterator[FastAPI]:
    """The app with these rates, trusting PROXY, in the test's transaction."""
    updates = {"rate_limit_per_user": user, "rate_limit_per_address": address}
    changed = settings.model_copy(
        update={
            "ratelimit": settings.ratelimit.model_copy(update=updates),
            "web": settings.web.model_copy(update={"forwarded_allow_ips": PROXY}),
            "redis": settings.redis.model_copy(
                update={"redis_url": redis_url or settings.redis.redis_url}
            ),
        }
    )
    app = create_app(changed)
    async with app.router.lifespan_context(app):
        app.state.sessionmaker = app.state.read_sessionmaker = sessionmaker
        yield app


def client_at(app: FastAPI, ip: str) -> httpx.AsyncClient:
    """A client whose connections come from ``ip``."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(ip, 40000)), base_url="http://test"
    )


async def new_user(client: httpx.AsyncClient) -> dict[str, str]:
    """A fresh user's Authorization headers (through the default app)."""
    return await token_headers(client, (await register(client))["email"])


ITEMS = "/api/v1/items"


async def test_a_spent_user_limit_is_a_429_with_the_draft_headers(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_headers: dict[str, str],
) -> None:
    async with (
        limited(settings, sessionmaker, user="3/minute", address="100/minute") as app,
        client_at(app, "192.0.2.1") as client,
    ):
        answers = [await client.get(ITEMS, headers=user_headers) for _ in range(4)]
    for n, ok in enumerate(answers[:3]):
        assert ok.status_code == 200, ok.text
        assert ok.headers["RateLimit-Policy"] == '"user";q=3;w=60, "address";q=100;w=60'
        left = limits_of(ok)
        assert [left["user"][0], left["address"][0]] == [2 - n, 99 - n]
        assert all(0 < reset <= 60 for _, reset in left.values())
    refused = answers[3]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_requests"
    assert "this user" in refused.json()["error"]["message"]
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    left = limits_of(refused)
    # The refused request took nothing from the address.
    assert [left["user"][0], left["address"][0]] == [0, 97]
    assert int(refused.headers["Retry-After"]) >= left["user"][1]
    assert policies_of(refused) == {"user": (3, 60), "address": (100, 60)}
    # The one error shape, and the other headers every response carries.
    assert set(refused.json()) == {"error"}
    assert refused.headers["X-Content-Type-Options"] == "nosniff"
    assert refused.headers["X-Request-ID"]


async def test_anonymous_and_invalid_tokens_count_against_the_address(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with (
        limited(settings, sessionmaker, user="1/minute", address="3/minute") as app,
        client_at(app, "192.0.2.2") as client,
    ):
        anonymous = await client.get(ITEMS)
        forged = [
            await client.get(ITEMS, headers={"Authorization": "Bearer not.a.token"})
            for _ in range(3)
        ]
    assert anonymous.status_code == 401
    assert anonymous.headers["RateLimit-Policy"] == '"address";q=3;w=60'
    assert limits_of(anonymous)["address"][0] == 2
    # An invalid token is no user: 1/minute per user never applies to it.
    assert [r.status_code for r in forged] == [401, 401, 429]
    assert set(limits_of(forged[2])) == {"address"}
    assert "this address" in forged[2].json()["error"]["message"]


async def test_a_refused_request_with_a_body_closes_the_connection(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Refused before its body was read (an upload, say): the server must not
    go on reading it, so the answer closes the connection; a refusal without
    a body keeps it."""
    async with (
        limited(settings, sessionmaker, user="1/minute", address="1/minute") as app,
        client_at(app, "192.0.2.9") as client,
    ):
        await client.get(ITEMS)
        upload = await client.post(
            "/api/v1/items/import", files={"file": ("a.csv", b"x" * 100_000, "text/csv")}
        )
        bare = await client.get(ITEMS)
    assert upload.status_code == 429
    assert upload.headers["connection"] == "close"
    assert bare.status_code == 429
    assert "connection" not in bare.headers


async def test_users_of_one_address_are_limited_apart_and_together(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
) -> None:
    """Each user has their own quota; many accounts from one address share
    the address's, so opening accounts does not multiply it."""
    users = [await new_user(client) for _ in range(3)]
    async with (
        limited(settings, sessionmaker, user="2/minute", address="5/minute") as app,
        client_at(app, "192.0.2.3") as shared,
    ):
        a = [(await shared.get(ITEMS, headers=users[0])).status_code for _ in range(3)]
        b = [(await shared.get(ITEMS, headers=users[1])).status_code for _ in range(2)]
        c = [await shared.get(ITEMS, headers=users[2]) for _ in range(2)]
    assert a == [200, 200, 429]
    assert b == [200, 200]  # A's spent quota is A's alone
    assert [r.status_code for r in c] == [200, 429]  # the address's fifth, then none
    left = limits_of(c[1])
    assert (left["user"][0], left["address"][0]) == (1, 0)


async def test_one_user_from_two_addresses_behind_the_proxy(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_headers: dict[str, str],
) -> None:
    """The address is the one the trusted proxy forwarded; the user's quota
    follows the user from address to address."""
    async with (
        limited(settings, sessionmaker, user="3/minute", address="2/minute") as app,
        client_at(app, PROXY) as proxy,
    ):

        async def get(address: str) -> int:
            headers = {**user_headers, "X-Forwarded-For": address}
            return (await proxy.get(ITEMS, headers=headers)).status_code

        first = [await get("203.0.113.7") for _ in range(3)]
        second = [await get("198.51.100.7") for _ in range(2)]
    assert first == [200, 200, 429]  # the first address's 2
    assert second == [200, 429]  # a fresh address, but the user's third was the last


async def test_a_burst_is_counted_exactly_and_never_let_through_unchecked(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """120 requests at once from one address, more than the limiter's
    IN_FLIGHT: each waits its turn, none goes unchecked, and exactly the
    quota gets through."""
    before = unchecked()
    async with (
        limited(settings, sessionmaker, address="100/minute") as app,
        client_at(app, "192.0.2.10") as client,
    ):
        answers = await asyncio.gather(*(client.get(ITEMS) for _ in range(120)))
    assert 2 * ratelimit.IN_FLIGHT < 120
    assert unchecked() == before
    codes = sorted(r.status_code for r in answers)
    assert codes == [401] * 100 + [429] * 20
    left = sorted(limits_of(r)["address"][0] for r in answers if r.status_code == 401)
    assert left == list(range(100))


async def test_ipv6_clients_are_counted_per_64(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with limited(settings, sessionmaker, address="2/minute") as app:
        codes = []
        for ip in ("2001:db8:1:1::1", "2001:db8:1:1::2", "2001:db8:1:1:ffff::9", "2001:db8:1:2::1"):
            async with client_at(app, ip) as client:
                codes.append((await client.get(ITEMS)).status_code)
    assert codes == [401, 401, 429, 401]


async def test_health_and_metrics_are_never_limited(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with (
        limited(settings, sessionmaker, address="1/minute") as app,
        client_at(app, "192.0.2.4") as client,
    ):
        assert (await client.get(ITEMS)).status_code == 401
        assert (await client.get(ITEMS)).status_code == 429
        for _ in range(3):
            for path in ("/health/live", "/health/ready", "/metrics"):
                response = await client.get(path)
                assert response.status_code == 200, (path, response.text)
                assert "RateLimit" not in response.headers


async def test_the_limit_resets_after_the_window(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with (
        limited(settings, sessionmaker, address="2/second") as app,
        client_at(app, "192.0.2.5") as client,
    ):
        before = [await client.get(ITEMS) for _ in range(3)]
        await asyncio.sleep(1.1)
        after = await client.get(ITEMS)
    assert [r.status_code for r in before] == [401, 401, 429]
    assert before[2].headers["Retry-After"] == "1"
    assert after.status_code == 401
    assert limits_of(after)["address"][0] == 1


def unchecked() -> float:
    return REGISTRY.get_sample_value("appstack_rate_limit_unchecked_total") or 0.0


async def test_an_unreachable_redis_lets_requests_through(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fail open: the request is served without the headers, counted in
    the metric, logged once; Redis is left alone for PAUSE_SECONDS."""
    # Long enough for three requests on a busy machine, short for a test.
    monkeypatch.setattr(ratelimit, "PAUSE_SECONDS", 2.0)
    before = unchecked()
    dead = "redis://127.0.0.1:1/0"
    async with (
        limited(settings, sessionmaker, redis_url=dead) as app,
        client_at(app, "192.0.2.6") as client,
    ):
        with caplog.at_level(logging.WARNING, logger="api.ratelimit"):
            paused = [await client.get(ITEMS, headers=user_headers) for _ in range(3)]
            logged_while_paused = len(caplog.records)
            await asyncio.sleep(2.05)
            again = await client.get(ITEMS, headers=user_headers)
    for response in [*paused, again]:
        assert response.status_code == 200, response.text
        assert "RateLimit" not in response.headers
    assert unchecked() - before == 4
    assert logged_while_paused == 1  # asked once, then left alone
    assert len(caplog.records) == 2  # asked again after the pause
    assert "Redis failed" in caplog.records[0].getMessage()


@asynccontextmanager
async def silent_redis() -> AsyncIterator[str]:
    """The URL of a server that accepts connections and never answers (a
    hung Redis)."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        yield f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)


async def timed(client: httpx.AsyncClient) -> tuple[int, float]:
    """GET the items: the status and the seconds it took."""
    started = time.monotonic()
    response = await client.get(ITEMS)
    return response.status_code, time.monotonic() - started


async def test_a_hung_redis_delays_one_request_per_pause(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first check waits REDIS_TIMEOUT_SECONDS; then, paused, none waits;
    after the pause one check probes Redis (and waits again) while the
    others go through unchecked at once."""
    monkeypatch.setattr(ratelimit, "PAUSE_SECONDS", 1.0)
    limit = ratelimit.REDIS_TIMEOUT_SECONDS
    async with (
        silent_redis() as url,
        limited(settings, sessionmaker, redis_url=url) as app,
        client_at(app, "192.0.2.7") as client,
    ):
        first = await timed(client)
        paused = await timed(client)
        await asyncio.sleep(1.05)
        probe = asyncio.create_task(timed(client))
        await asyncio.sleep(0.1)
        during_probe = await asyncio.gather(*(timed(client) for _ in range(5)))
        probed = await probe
    assert first[0] == paused[0] == probed[0] == 401
    assert limit - 0.05 < first[1] < limit + 0.4, first
    assert paused[1] < 0.2, paused
    assert limit - 0.05 < probed[1] < limit + 0.4, probed
    assert all(code == 401 and took < 0.3 for code, took in during_probe), during_probe


async def test_a_redis_that_refuses_writes_lets_requests_through(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    redis = Redis.from_url(settings.redis.redis_url)
    before = (await redis.config_get("maxmemory"))["maxmemory"]
    try:
        await redis.config_set("maxmemory", 1)
        async with limited(settings, sessionmaker) as app, client_at(app, "192.0.2.8") as client:
            response = await client.get(ITEMS)
    finally:
        await redis.config_set("maxmemory", str(before))
        await redis.aclose()
    assert response.status_code == 401
    assert "RateLimit" not in response.headers


async def test_switched_off_there_are_no_headers(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    off = settings.model_copy(
        update={"ratelimit": settings.ratelimit.model_copy(update={"rate_limit_enabled": False})}
    )
    app = create_app(off)
    async with app.router.lifespan_context(app), client_at(app, "192.0.2.9") as client:
        response = await client.get(ITEMS)
    assert response.status_code == 401
    assert "RateLimit" not in response.headers
    assert not hasattr(app.state, "rate_limiter")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("600/fortnight", "is not a rate"),
        ("10/second;100/minute", "give exactly one"),
        ("0/minute", "the count must be 1 to 1000000"),
        ("1000001/minute", "the count must be 1 to 1000000"),
        ("5/2 days", "the window must be 1 second to 1 day"),
    ],
)
def test_a_bad_rate_stops_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, says: str
) -> None:
    monkeypatch.setenv("RATE_LIMIT_PER_ADDRESS", value)
    with pytest.raises(SettingsError, match=f"RATE_LIMIT_PER_ADDRESS .*{re.escape(says)}"):
        load_settings()
