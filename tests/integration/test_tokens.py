"""Token lifecycle: short access tokens, rotating refresh tokens with reuse
detection, logout, and revocation on a password change or a deactivation."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.main import create_app
from api.principals import PrincipalCache
from core.models import AuthSession, RefreshToken, User
from core.security import hash_password
from core.settings import Settings
from core.users import sessions
from core.users.service import ensure_superuser
from tests.integration.conftest import PASSWORD, login, register, serve
from tests.unit.test_principals import Clock

NEW_PASSWORD = "a different long passphrase"


async def log_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await login(client, email, password)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def exchange(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})


def session_of(tokens: dict[str, Any]) -> uuid.UUID:
    payload = tokens["access_token"].split(".")[1]
    return uuid.UUID(json.loads(base64.urlsafe_b64decode(payload + "=="))["sid"])


async def refused_everywhere(client: httpx.AsyncClient, tokens: dict[str, Any]) -> None:
    """The access token is refused on the fresh route and on a cached one,
    and the refresh token gives nothing."""
    for path in ("/api/v1/users/me", "/api/v1/items"):
        response = await client.get(path, headers=bearer(tokens))
        assert response.status_code == 401, (path, response.text)
    assert (await exchange(client, tokens["refresh_token"])).status_code == 401


async def test_login_then_refresh_rotates_the_pair(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await register(client)
    first = await log_in(client, user["email"])
    response = await exchange(client, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["token_type"] == "bearer"
    assert second["refresh_token"] != first["refresh_token"]
    assert session_of(second) == session_of(first)  # the same login
    assert (await client.get("/api/v1/users/me", headers=bearer(second))).status_code == 200
    # Only hashes are stored, never the tokens themselves.
    stored = (await session.scalars(select(RefreshToken.token_hash))).all()
    assert len(stored) >= 2
    assert all(len(h) == 32 for h in stored)
    assert not {first["refresh_token"].encode(), second["refresh_token"].encode()} & set(stored)


async def test_a_reused_refresh_token_revokes_the_whole_family(client: httpx.AsyncClient) -> None:
    user = await register(client)
    stolen = await log_in(client, user["email"])
    rotated = (await exchange(client, stolen["refresh_token"])).json()
    other_login = await log_in(client, user["email"])

    reuse = await exchange(client, stolen["refresh_token"])
    assert reuse.status_code == 401
    assert reuse.json()["error"]["code"] == "not_authenticated"
    assert "revoked" in reuse.json()["error"]["message"]
    # Every token of that login is dead, the newest pair too...
    await refused_everywhere(client, rotated)
    await refused_everywhere(client, stolen)
    # ...and the user's other login is not touched.
    assert (await client.get("/api/v1/items", headers=bearer(other_login))).status_code == 200
    assert (await exchange(client, other_login["refresh_token"])).status_code == 200


async def test_a_revocation_by_reuse_is_committed_although_the_answer_is_401(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await register(client)
    tokens = await log_in(client, user["email"])
    await exchange(client, tokens["refresh_token"])
    assert (await exchange(client, tokens["refresh_token"])).status_code == 401
    revoked = await session.get(AuthSession, session_of(tokens))
    assert revoked is not None
    await session.refresh(revoked)
    assert revoked.revoked_at is not None
    assert revoked.revoked_reason == "refresh_reuse"


async def test_two_exchanges_of_one_token_at_once_give_one_pair(
    engine: AsyncEngine, settings: Settings
) -> None:
    """Rows are locked: of two simultaneous exchanges one wins, the other is
    a reuse, which revokes the family (the winner's pair included)."""
    async with serve(settings) as client:
        user = await register(client)
        try:
            tokens = await log_in(client, user["email"])
            results = await asyncio.gather(
                exchange(client, tokens["refresh_token"]),
                exchange(client, tokens["refresh_token"]),
            )
            assert Counter(r.status_code for r in results) == {200: 1, 401: 1}
            winner = next(r for r in results if r.status_code == 200).json()
            await refused_everywhere(client, winner)
        finally:
            async with engine.begin() as connection:
                await connection.execute(delete(User).where(User.email == user["email"]))


async def test_an_expired_or_unknown_refresh_token_is_401(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await register(client)
    tokens = await log_in(client, user["email"])
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.session_id == session_of(tokens))
        .values(expires_at=func.now() - timedelta(seconds=1))
    )
    await session.commit()
    expired = await exchange(client, tokens["refresh_token"])
    assert expired.status_code == 401
    assert "expired" in expired.json()["error"]["message"]
    assert (await exchange(client, "x" * 43)).status_code == 401


async def test_refresh_input_is_bounded(client: httpx.AsyncClient) -> None:
    for body in ({"refresh_token": ""}, {"refresh_token": "x" * 257}, {}, {"refresh": "x"}):
        assert (await client.post("/api/v1/auth/refresh", json=body)).status_code == 422


async def test_logout_revokes_the_token_and_its_family(client: httpx.AsyncClient) -> None:
    user = await register(client)
    tokens = await log_in(client, user["email"])
    other = await log_in(client, user["email"])
    assert (await client.get("/api/v1/items", headers=bearer(tokens))).status_code == 200  # cached
    response = await client.post("/api/v1/auth/logout", headers=bearer(tokens))
    assert response.status_code == 204
    await refused_everywhere(client, tokens)
    assert (await client.post("/api/v1/auth/logout", headers=bearer(tokens))).status_code == 401
    assert (await client.get("/api/v1/items", headers=bearer(other))).status_code == 200


async def test_a_password_change_revokes_every_earlier_token(client: httpx.AsyncClient) -> None:
    user = await register(client)
    phone, laptop = await log_in(client, user["email"]), await log_in(client, user["email"])
    assert (await client.get("/api/v1/items", headers=bearer(laptop))).status_code == 200  # cached
    changed = await client.patch(
        "/api/v1/users/me",
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
        headers=bearer(phone),
    )
    assert changed.status_code == 200, changed.text
    await refused_everywhere(client, phone)
    await refused_everywhere(client, laptop)
    fresh = await log_in(client, user["email"], NEW_PASSWORD)
    assert (await client.get("/api/v1/items", headers=bearer(fresh))).status_code == 200


async def test_a_deactivation_revokes_every_token_for_good(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await register(client)
    tokens = await log_in(client, user["email"])
    assert (await client.get("/api/v1/items", headers=bearer(tokens))).status_code == 200
    await ensure_superuser(session, email="boss@example.com", password=PASSWORD)
    await session.commit()
    admin = bearer(await log_in(client, "boss@example.com"))
    url = f"/api/v1/users/{user['id']}"

    response = await client.patch(url, json={"is_active": False}, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is False
    await refused_everywhere(client, tokens)
    assert (await login(client, user["email"])).status_code == 403
    # Reactivated, the account logs in again, but the old tokens stay dead.
    assert (await client.patch(url, json={"is_active": True}, headers=admin)).status_code == 200
    await refused_everywhere(client, tokens)
    assert (await login(client, user["email"])).status_code == 200


async def test_only_superusers_deactivate_and_unknown_users_are_404(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await register(client)
    tokens = await log_in(client, user["email"])
    url = f"/api/v1/users/{user['id']}"
    denied = await client.patch(url, json={"is_active": False}, headers=bearer(tokens))
    assert denied.status_code == 403
    await ensure_superuser(session, email="chief@example.com", password=PASSWORD)
    await session.commit()
    admin = bearer(await log_in(client, "chief@example.com"))
    missing = f"/api/v1/users/{uuid.uuid4()}"
    assert (await client.patch(missing, json={"is_active": False}, headers=admin)).status_code == (
        404
    )
    for body in ({}, {"is_active": "maybe"}, {"is_active": False, "is_superuser": True}):
        assert (await client.patch(url, json=body, headers=admin)).status_code == 422


async def test_other_processes_honour_a_revocation_within_the_cache_time(
    client: httpx.AsyncClient, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Another api process (a second app, with caches of its own) cached the
    session: it refuses the token once AUTH_CACHE_SECONDS are over, and at
    once on the routes that never cache."""
    user = await register(client)
    tokens = await log_in(client, user["email"])
    clock = Clock()
    elsewhere_app = create_app(settings)
    async with elsewhere_app.router.lifespan_context(elsewhere_app):
        state = elsewhere_app.state
        state.sessionmaker = state.read_sessionmaker = sessionmaker
        state.principals = PrincipalCache(settings.auth.auth_cache_seconds, clock=clock)
        transport = httpx.ASGITransport(app=elsewhere_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as elsewhere:
            items = await elsewhere.get("/api/v1/items", headers=bearer(tokens))
            assert items.status_code == 200
            logout = await client.post("/api/v1/auth/logout", headers=bearer(tokens))
            assert logout.status_code == 204
            me = await elsewhere.get("/api/v1/users/me", headers=bearer(tokens))
            assert me.status_code == 401
            cached = await elsewhere.get("/api/v1/items", headers=bearer(tokens))
            assert cached.status_code == 200  # within AUTH_CACHE_SECONDS
            clock.now += settings.auth.auth_cache_seconds
            expired = await elsewhere.get("/api/v1/items", headers=bearer(tokens))
            assert expired.status_code == 401


async def test_cleanup_deletes_only_long_expired_logins(session: AsyncSession) -> None:
    user = User(email=f"old-{uuid.uuid4().hex[:8]}@example.com", hashed_password="x")
    session.add(user)
    await session.flush()
    now = datetime.now(UTC)
    old = AuthSession(user_id=user.id, expires_at=now - timedelta(days=2))
    recent = AuthSession(user_id=user.id, expires_at=now - timedelta(hours=1))
    live = AuthSession(user_id=user.id, expires_at=now + timedelta(days=1))
    session.add_all([old, recent, live])
    await session.flush()
    session.add_all(
        [
            RefreshToken(token_hash=b"o" * 32, session_id=old.id, expires_at=old.expires_at),
            RefreshToken(
                token_hash=b"u" * 32, session_id=live.id, expires_at=now - timedelta(days=3)
            ),
            RefreshToken(token_hash=b"l" * 32, session_id=live.id, expires_at=live.expires_at),
        ]
    )
    await session.flush()
    deleted = await sessions.cleanup(session)
    assert deleted == (1, 1)  # the old session (its token with it), the live one's used token
    left = set(
        (await session.scalars(select(AuthSession.id).where(AuthSession.user_id == user.id))).all()
    )
    assert left == {recent.id, live.id}
    tokens = (
        await session.scalars(
            select(RefreshToken.token_hash).where(RefreshToken.session_id == live.id)
        )
    ).all()
    assert tokens == [b"l" * 32]


async def test_a_user_keeps_at_most_max_sessions(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    user = await register(client)
    limit = settings.auth.max_sessions_per_user
    logins = [await log_in(client, user["email"]) for _ in range(limit + 2)]
    count = select(func.count()).select_from(AuthSession)
    assert await session.scalar(count.where(AuthSession.user_id == uuid.UUID(user["id"]))) == limit
    for oldest in logins[:2]:
        await refused_everywhere(client, oldest)
    for kept in logins[2:]:
        assert (await client.get("/api/v1/users/me", headers=bearer(kept))).status_code == 200


async def test_a_session_remembers_only_its_last_used_tokens(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """Refreshing in a loop does not grow the table; the most recent used
    tokens still count as reuse."""
    user = await register(client)
    tokens = await log_in(client, user["email"])
    history = [tokens]
    for _ in range(sessions.USED_TOKENS_KEPT + 5):
        response = await exchange(client, history[-1]["refresh_token"])
        assert response.status_code == 200, response.text
        history.append(response.json())
    rows = select(func.count()).where(RefreshToken.session_id == session_of(tokens))
    assert await session.scalar(rows) == sessions.USED_TOKENS_KEPT + 1
    # Forgotten: unknown, nothing revoked.
    assert (await exchange(client, history[0]["refresh_token"])).status_code == 401
    assert (await client.get("/api/v1/users/me", headers=bearer(history[-1]))).status_code == 200
    # Remembered: a reuse, the session is revoked.
    assert (await exchange(client, history[-2]["refresh_token"])).status_code == 401
    await refused_everywhere(client, history[-1])


async def test_a_login_finishing_during_a_password_change_gets_no_session(
    engine: AsyncEngine, settings: Settings
) -> None:
    """A login whose (slow) check of the old password overlaps a password
    change either commits before the change (and is revoked by it) or sees
    the new hash and is refused: it never keeps a session."""
    async with serve(settings) as client:
        user = await register(client)
        try:
            new_hash = await hash_password(NEW_PASSWORD)
            async with engine.connect() as change:
                # The password change, holding the user row, not yet committed.
                await change.execute(
                    update(User).where(User.email == user["email"]).values(hashed_password=new_hash)
                )
                pending = asyncio.create_task(login(client, user["email"]))
                await wait_for_a_lock_wait(engine)  # the login checked, and waits
                await change.commit()
                response = await pending
            assert response.status_code == 401, response.text
            async with engine.connect() as connection:
                count = select(func.count()).select_from(AuthSession)
                owned = count.where(AuthSession.user_id == uuid.UUID(user["id"]))
                assert await connection.scalar(owned) == 0
        finally:
            async with engine.begin() as connection:
                await connection.execute(delete(User).where(User.email == user["email"]))


async def wait_for_a_lock_wait(engine: AsyncEngine) -> None:
    """Until some backend of this database waits for a row lock (15 s at most)."""
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with asyncio.timeout(15):
        while True:
            async with engine.connect() as connection:
                if await connection.scalar(waiting):
                    return
            await asyncio.sleep(0.02)
