"""Throttles in the real Redis: password checks and registrations."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.main import create_app
from core import security
from core.models import User
from core.settings import Settings
from core.users.throttle import address_key, slowdown
from tests.integration.conftest import PASSWORD, login, register, serve, token_headers

WRONG = "wrong password!"


def client_at(app: FastAPI, ip: str) -> httpx.AsyncClient:
    """A client whose connections come from ``ip``."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(ip, 40000)), base_url="http://test"
    )


@pytest.fixture
async def client_from(app: FastAPI) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """Clients that connect from different addresses."""
    clients = {ip: client_at(app, ip) for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3")}
    yield clients
    for client in clients.values():
        await client.aclose()


async def test_concurrent_guesses_never_check_more_than_the_limit(
    engine: AsyncEngine, settings: Settings
) -> None:
    """30 wrong passwords at once for one email from one address: the
    attempt is reserved before the (slow) check, so only the limit is checked.
    (On the app's own engine: concurrent requests need connections of their own.)"""
    limit = settings.auth.login_max_failures
    async with serve(settings) as attacker:
        victim = await register(attacker)
        try:
            responses = await asyncio.gather(
                *[login(attacker, victim["email"], WRONG) for _ in range(30)]
            )
        finally:
            async with engine.begin() as connection:
                await connection.execute(delete(User).where(User.email == victim["email"]))
    codes = Counter(r.status_code for r in responses)
    assert codes == {401: limit, 429: 30 - limit}, codes
    refused = next(r for r in responses if r.status_code == 429)
    assert 0 < int(refused.headers["retry-after"]) <= settings.auth.login_window_seconds
    assert refused.json()["error"]["code"] == "too_many_requests"


async def test_failures_from_elsewhere_never_lock_the_owner_out(
    client_from: dict[str, httpx.AsyncClient], settings: Settings
) -> None:
    """50 wrong passwords for the victim's email from address A: A is refused,
    the victim's right password from address B still answers 200."""
    attacker, owner = client_from["10.0.0.1"], client_from["10.0.0.2"]
    victim = await register(owner)
    codes = Counter(
        [(await login(attacker, victim["email"], WRONG)).status_code for _ in range(50)]
    )
    assert codes == {401: settings.auth.login_max_failures, 429: 50 - 10}, codes
    assert (await login(attacker, victim["email"])).status_code == 429  # the pair is blocked
    assert (await login(owner, victim["email"])).status_code == 200


async def test_a_distributed_guess_only_slows_the_email_down(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """One wrong password from each of 25 addresses: none is refused, and the
    owner's login from a fresh address succeeds, after the bounded delay.
    (LOGIN_MAX_DELAY_SECONDS lowered to 0.2 s: the bots are slowed down too,
    by up to that much each.)"""
    auth = settings.auth.model_copy(update={"login_max_delay_seconds": 0.2})
    app = create_app(settings.model_copy(update={"auth": auth}))
    async with app.router.lifespan_context(app):
        app.state.sessionmaker = app.state.read_sessionmaker = sessionmaker
        async with client_at(app, "10.0.0.3") as owner:
            victim = await register(owner)
            for n in range(25):
                async with client_at(app, f"198.51.100.{n + 1}") as bot:
                    assert (await login(bot, victim["email"], WRONG)).status_code == 401
            expected = slowdown(25, auth)
            assert expected == auth.login_max_delay_seconds
            started = time.monotonic()
            assert (await login(owner, victim["email"])).status_code == 200
            assert time.monotonic() - started >= expected
            # Success forgets the email's failures: the next login is not slowed.
            redis: Redis = app.state.redis
            assert await redis.keys("pw:fail:email:*") == []


def test_the_slowdown_doubles_and_is_bounded(settings: Settings) -> None:
    auth = settings.auth
    first = auth.login_max_failures
    assert [slowdown(n, auth) for n in (0, first, first + 1, first + 2, first + 3)] == [
        0,
        0,
        0.1,
        0.2,
        0.4,
    ]
    assert slowdown(10**9, auth) == auth.login_max_delay_seconds


async def test_failures_from_one_address_are_limited_across_emails(
    client_from: dict[str, httpx.AsyncClient], settings: Settings
) -> None:
    attacker, elsewhere = client_from["10.0.0.1"], client_from["10.0.0.2"]
    target = await register(elsewhere)
    for n in range(settings.auth.login_max_failures_per_ip):
        assert (await login(attacker, f"guess{n}@example.com", WRONG)).status_code == 401
    assert (await login(attacker, target["email"])).status_code == 429
    assert (await login(elsewhere, target["email"])).status_code == 200


async def test_ipv6_clients_are_counted_per_64(app: FastAPI, settings: Settings) -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2")
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    async with client_at(app, "2001:db8:1:2::1") as owner:
        victim = await register(owner)
    for n in range(settings.auth.login_max_failures):
        # A new address of the same /64 for every guess.
        async with client_at(app, f"2001:db8:1:2::{n + 100:x}") as bot:
            assert (await login(bot, victim["email"], WRONG)).status_code == 401
    async with client_at(app, "2001:db8:1:2:ffff::9") as bot:
        assert (await login(bot, victim["email"], WRONG)).status_code == 429


async def test_success_gives_the_reservation_back(
    app: FastAPI, client_from: dict[str, httpx.AsyncClient], settings: Settings
) -> None:
    client = client_from["10.0.0.1"]
    user = await register(client)
    limit = settings.auth.login_max_failures
    for _ in range(limit - 1):
        assert (await login(client, user["email"], WRONG)).status_code == 401
    redis: Redis = app.state.redis
    assert int(await redis.get("pw:fail:ip:10.0.0.1") or 0) == limit - 1
    assert (await login(client, user["email"])).status_code == 200
    # The success's reservation is given back: the address still holds only
    # its failures, and the pair's failures are forgotten.
    assert int(await redis.get("pw:fail:ip:10.0.0.1") or 0) == limit - 1
    assert await redis.keys("pw:fail:pair:*") == []
    for _ in range(limit - 1):
        assert (await login(client, user["email"], WRONG)).status_code == 401
    assert (await login(client, user["email"])).status_code == 200


async def test_current_password_guesses_count_against_the_same_limits(
    client_from: dict[str, httpx.AsyncClient], settings: Settings
) -> None:
    """A token is no way around the login throttle: PATCH /users/me with a
    wrong current_password turns 429, and so does login from that address."""
    client = client_from["10.0.0.1"]
    user = await register(client)
    headers = await token_headers(client, user["email"])

    async def guess() -> int:
        response = await client.patch(
            "/api/v1/users/me",
            json={"password": "a new long passphrase", "current_password": WRONG},
            headers=headers,
        )
        return response.status_code

    codes = [await guess() for _ in range(settings.auth.login_max_failures + 2)]
    assert codes == [401] * settings.auth.login_max_failures + [429, 429]
    assert (await login(client, user["email"])).status_code == 429
    assert (await login(client_from["10.0.0.2"], user["email"])).status_code == 200


async def test_registrations_per_address_are_limited(
    client_from: dict[str, httpx.AsyncClient], settings: Settings
) -> None:
    client = client_from["10.0.0.1"]
    for _ in range(settings.auth.register_max_per_ip):
        await register(client)
    response = await client.post(
        "/api/v1/auth/register", json={"email": "one-more@example.com", "password": PASSWORD}
    )
    assert response.status_code == 429, response.text
    assert 0 < int(response.headers["retry-after"]) <= settings.auth.register_window_seconds
    await register(client_from["10.0.0.2"])  # another address is not affected


async def test_unreachable_redis_is_a_503_not_a_500(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """With nothing listening at REDIS_URL, a login and a registration (which
    need the throttle counters) answer 503 with Retry-After once the client's
    retries ran out: no password is checked or hashed unthrottled."""
    unreachable = settings.model_copy(
        update={"redis": settings.redis.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})}
    )
    async with serve(unreachable, sessionmaker) as client:
        registered = await client.post(
            "/api/v1/auth/register", json={"email": "r@example.com", "password": PASSWORD}
        )
        response = await login(client, "someone@example.com")
    for refused in (registered, response):
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"] == "5"
        assert refused.json()["error"]["code"] == "service_unavailable"


async def test_a_redis_that_refuses_writes_fails_closed(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A Redis that answers with an error (out of memory under noeviction)
    refuses the attempt with a 503, never a 500 and never an unchecked login."""
    user = await register(client)
    redis = Redis.from_url(settings.redis.redis_url)
    before = (await redis.config_get("maxmemory"))["maxmemory"]
    try:
        await redis.config_set("maxmemory", 1)
        response = await login(client, user["email"])
    finally:
        await redis.config_set("maxmemory", str(before))
        await redis.aclose()
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "service_unavailable"
    assert (await login(client, user["email"])).status_code == 200


async def test_a_saturated_process_refuses_without_counting(
    app: FastAPI, client_from: dict[str, httpx.AsyncClient], settings: Settings
) -> None:
    """While this process's password checks are saturated, logins answer 503
    and nothing is counted: the owner's right password works afterwards."""
    owner = client_from["10.0.0.2"]
    user = await register(owner)
    # The computing slot held here, so that the burst stays waiting (and the
    # process saturated) for as long as the test needs.
    async with security._limiter:
        burst = [
            asyncio.create_task(security.hash_password("long enough password"))
            for _ in range(security.HASH_CONCURRENCY + security.HASH_MAX_WAITING)
        ]
        try:
            await asyncio.sleep(0.01)
            assert security.hashing_saturated()
            for _ in range(settings.auth.login_max_failures + 2):
                response = await login(owner, user["email"])
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"] == "1"
        finally:
            for task in burst:
                task.cancel()
            await asyncio.gather(*burst, return_exceptions=True)
    redis: Redis = app.state.redis
    assert await redis.keys("pw:fail:*") == []
    assert (await login(owner, user["email"])).status_code == 200


async def test_a_login_form_in_a_charset_that_yields_surrogates_is_a_422(
    client: httpx.AsyncClient,
) -> None:
    """A multipart form may name its own charset; UTF-7 decodes to lone
    surrogates, which nothing downstream can encode: a 422, not a 500."""
    for field, value in (("username", "a+2AA-@example.com"), ("password", "abc+2AA-defgh")):
        fields = {"username": "a@example.com", "password": "a long enough one", field: value}
        body = "".join(
            f'--X\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{text}\r\n'
            for name, text in fields.items()
        )
        response = await client.post(
            "/api/v1/auth/login",
            content=(body + "--X--\r\n").encode(),
            headers={"Content-Type": "multipart/form-data; boundary=X; charset=utf-7"},
        )
        assert response.status_code == 422, (field, response.text)
        assert response.json()["detail"][0]["loc"] == ["body", field]
