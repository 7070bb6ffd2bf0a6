"""Registration, login, profile and the superuser list."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.principals import PrincipalCache
from core.models import User
from core.users.service import ensure_superuser
from tests.integration.conftest import PASSWORD, login, register, token_headers
from tests.unit.test_principals import Clock


async def test_register_normalises_email_and_hides_the_hash(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "  Alice@Example.COM ", "password": PASSWORD, "full_name": "Alice"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["email"] == "alice@example.com"
    assert body["full_name"] == "Alice"
    assert body["is_active"] is True
    assert body["is_superuser"] is False
    assert not {"password", "hashed_password"} & body.keys()
    stored = await session.scalar(select(User).where(User.email == "alice@example.com"))
    assert stored is not None
    assert stored.hashed_password.startswith("$argon2id$")


async def test_duplicate_email_in_any_case_is_409(client: httpx.AsyncClient) -> None:
    await register(client, "bob@example.com")
    response = await client.post(
        "/api/v1/auth/register", json={"email": "BOB@example.com", "password": PASSWORD}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


@pytest.mark.parametrize(
    "body",
    [
        {"email": "c@example.com", "password": "short7!"},
        {"email": "c@example.com", "password": "x" * 129},
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "c@example.com"},
        {"email": "c@example.com", "password": PASSWORD, "is_superuser": True},
        {"email": "c@example.com", "password": PASSWORD, "full_name": "nul\x00"},
    ],
    ids=["short", "long", "bad-email", "no-password", "extra-field", "nul"],
)
async def test_register_rejects_bad_input(
    client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    assert (await client.post("/api/v1/auth/register", json=body)).status_code == 422


async def test_password_lengths_at_the_bounds_are_accepted(client: httpx.AsyncClient) -> None:
    await register(client, password="x" * 8)
    await register(client, password="y" * 128)


async def test_login_returns_a_bearer_token(client: httpx.AsyncClient) -> None:
    user = await register(client)
    response = await login(client, user["email"].upper())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    assert body["refresh_expires_in"] == 14 * 24 * 3600
    assert len(body["refresh_token"]) >= 43
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]


async def test_wrong_password_and_unknown_email_look_the_same(client: httpx.AsyncClient) -> None:
    user = await register(client)
    wrong = await login(client, user["email"], "wrong password!")
    unknown = await login(client, "nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "invalid_credentials"
    assert wrong.headers["www-authenticate"] == "Bearer"


async def test_inactive_users_can_neither_log_in_nor_use_a_token(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await register(client)
    headers = await token_headers(client, user["email"])
    await session.execute(update(User).where(User.email == user["email"]).values(is_active=False))
    await session.commit()

    refused = await login(client, user["email"])
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "inactive_user"
    me = await client.get("/api/v1/users/me", headers=headers)
    assert me.status_code == 403


async def test_update_full_name(client: httpx.AsyncClient, user_headers: dict[str, str]) -> None:
    response = await client.patch(
        "/api/v1/users/me", json={"full_name": "New Name"}, headers=user_headers
    )
    assert response.status_code == 200
    assert response.json()["full_name"] == "New Name"
    cleared = await client.patch("/api/v1/users/me", json={"full_name": None}, headers=user_headers)
    assert cleared.json()["full_name"] is None


async def test_change_password_needs_the_current_one(client: httpx.AsyncClient) -> None:
    user = await register(client)
    headers = await token_headers(client, user["email"])
    missing = await client.patch(
        "/api/v1/users/me", json={"password": "brand new password"}, headers=headers
    )
    assert missing.status_code == 422
    wrong = await client.patch(
        "/api/v1/users/me",
        json={"password": "brand new password", "current_password": "not it at all"},
        headers=headers,
    )
    assert wrong.status_code == 401
    ok = await client.patch(
        "/api/v1/users/me",
        json={"password": "brand new password", "current_password": PASSWORD},
        headers=headers,
    )
    assert ok.status_code == 200
    assert (await login(client, user["email"])).status_code == 401
    assert (await login(client, user["email"], "brand new password")).status_code == 200


async def test_profile_cannot_set_privileges(
    client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    for field in ({"is_superuser": True}, {"email": "x@example.com"}, {"is_active": False}):
        response = await client.patch("/api/v1/users/me", json=field, headers=user_headers)
        assert response.status_code == 422


async def test_only_superusers_list_users(
    client: httpx.AsyncClient, session: AsyncSession, user_headers: dict[str, str]
) -> None:
    assert (await client.get("/api/v1/users", headers=user_headers)).status_code == 403
    assert await ensure_superuser(session, email="Root@Example.com", password=PASSWORD) is True
    assert await ensure_superuser(session, email="root@example.com", password=PASSWORD) is False
    await session.commit()
    admin = await token_headers(client, "root@example.com")
    response = await client.get("/api/v1/users", params={"limit": 1}, headers=admin)
    assert response.status_code == 200
    body = response.json()
    assert body["total"] >= 2
    assert len(body["items"]) == 1
    assert (
        await client.get("/api/v1/users", params={"limit": 0}, headers=admin)
    ).status_code == 422


async def deactivate(session: AsyncSession, email: str) -> None:
    await session.execute(update(User).where(User.email == email).values(is_active=False))
    await session.commit()


async def test_resource_routes_refuse_a_deactivated_account_once_the_cache_expires(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """Items and jobs trust an active account for AUTH_CACHE_SECONDS; /users/me
    never does."""
    clock = Clock()
    app.state.principals = PrincipalCache(5, clock=clock)
    user = await register(client)
    headers = await token_headers(client, user["email"])
    assert (await client.get("/api/v1/items", headers=headers)).status_code == 200

    await deactivate(session, user["email"])
    assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 403
    assert (await client.get("/api/v1/items", headers=headers)).status_code == 200  # cached
    clock.now += 5
    refused = await client.get("/api/v1/items", headers=headers)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "inactive_user"


async def test_without_the_cache_a_deactivated_account_is_refused_at_once(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    app.state.principals = PrincipalCache(0)
    user = await register(client)
    headers = await token_headers(client, user["email"])
    assert (await client.get("/api/v1/jobs", headers=headers)).status_code == 200
    await deactivate(session, user["email"])
    assert (await client.get("/api/v1/jobs", headers=headers)).status_code == 403


async def test_login_normalises_the_email_as_registration_does(
    client: httpx.AsyncClient,
) -> None:
    stored = await register(client, "Anna@xn--mnchen-3ya.de")
    assert stored["email"] == "anna@münchen.de"
    for typed in ("Anna@xn--mnchen-3ya.de", "ANNA@MÜNCHEN.DE", " Anna <anna@münchen.de> "):
        assert (await login(client, typed)).status_code == 200, typed


async def test_a_nul_in_the_login_name_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/login", data={"username": "a\x00b@example.com", "password": PASSWORD}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "username"]


async def test_an_account_deleted_meanwhile_gets_a_409_not_a_500(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """Within AUTH_CACHE_SECONDS of its last request, a deleted account's
    token still passes; what it writes then refers to no user."""
    user = await register(client)
    headers = await token_headers(client, user["email"])
    item = {"sku": "gone-1", "name": "n", "price": "1.00", "quantity": 1}
    assert (await client.post("/api/v1/items", json=item, headers=headers)).status_code == 201
    await session.execute(delete(User).where(User.email == user["email"]))
    await session.flush()
    response = await client.post("/api/v1/items", json={**item, "sku": "gone-2"}, headers=headers)
    assert response.status_code == 409, response.text
    assert "no longer exists" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("email", "password", "reason"),
    [
        ("weak@example.com", "password", "most common passwords"),
        ("weak@example.com", "Qwertyuiop", "most common passwords"),
        ("jonathan.smith@example.com", "Jonathan.Smith-2026", "email address's name"),
    ],
    ids=["common", "common-any-case", "contains-the-email-name"],
)
async def test_registration_refuses_weak_passwords_and_says_why(
    client: httpx.AsyncClient, email: str, password: str, reason: str
) -> None:
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": password}
    )
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "password"]
    assert reason in error["msg"]


async def test_a_new_password_must_be_strong_too(client: httpx.AsyncClient) -> None:
    user = await register(client)
    headers = await token_headers(client, user["email"])
    local = user["email"].split("@")[0]
    for weak in ("iloveyou", f"{local}-secret"):
        response = await client.patch(
            "/api/v1/users/me",
            json={"password": weak, "current_password": PASSWORD},
            headers=headers,
        )
        assert response.status_code == 422, (weak, response.text)
        assert response.json()["detail"][0]["loc"] == ["body", "password"]
    # Refused before the current password is even checked: the old one still works.
    assert (await login(client, user["email"])).status_code == 200


async def test_an_over_long_login_password_is_a_422_and_never_hashed(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/auth/login", data={"username": "a@example.com", "password": "x" * 129}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "password"]
